//! Pub/sub: who listens to which channels, patterns and shard channels, and
//! how a published message reaches the listeners' connections.
//!
//! PUBLISH runs on the publisher's own connection task. It finds the
//! channel's subscribers in one of [`SHARDS`] registry shards, picked by the
//! channel's hash, frames the message once ([`Message`]) and appends those
//! same bytes to each subscriber's own queue ([`Subscriber`]); then it
//! checks the patterns. Per subscriber a publish costs a reference count
//! and a push, and its drain a copy: no encoding. Nothing on that path is
//! one lock for the whole server: two publishers to channels of different
//! shards never wait for each other, the pattern list is read-locked only
//! (and skipped while nobody has a pattern), and each subscriber's queue has
//! a lock of its own, held for a push.
//!
//! The subscriber's connection task drains its queue into its output when
//! woken ([`Subscriber::drain`]) and reports what the socket took
//! ([`Subscriber::flushed`]). What is queued or drained and not yet sent is
//! the client's pending output, bounded by `client-output-buffer-limit
//! pubsub` as Redis bounds it: past the hard limit, or past the soft limit
//! for longer than its seconds, the subscriber is cut off, its queue freed
//! and its connection killed. Memory therefore never grows without bound
//! unless the limits are set to 0, as in Redis.
//!
//! Order: a channel's shard lock is held while its message is pushed to
//! every subscriber of the channel, so all of them see one channel's
//! messages in one order; messages from one publisher reach each
//! subscriber in the order they were published.
//!
//! Nothing here touches a socket or the keyspace.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use bytes::{BufMut, Bytes};
use hashbrown::HashTable;
use resp::Protocol;
use transport::Output;

/// Reads the time, in Unix ms.
type Clock<'c> = &'c dyn Fn() -> i64;

/// How many registry shards channels are spread over.
const SHARDS: usize = 16;

/// Bytes counted per message beyond its strings: the RESP framing.
const FRAMING: usize = 48;

/// From how many subscribers on one publish their writes wait for the end
/// of their worker's turn (`turn.rs`) rather than go at once: with one,
/// at once is sooner (0.2 ms median latency against Redis's 0.38, the
/// same rate); with ten or more, one pass that gathers every publish of
/// the turn makes fewer writes (10 subscribers: about 5% less server CPU
/// a publish than at once, level with Redis's; 1,000: a third less than
/// Redis's, median latency 0.7x Redis's; docs/benchmarks.md).
pub(crate) const WIDE: usize = 8;

/// The three kinds of subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// SUBSCRIBE.
    Channel,
    /// PSUBSCRIBE.
    Pattern,
    /// SSUBSCRIBE.
    Shard,
}

/// A client type beside [`crate::client::NORMAL`] and the others: a normal
/// client with a subscription (CLIENT LIST TYPE pubsub, CLIENT KILL TYPE
/// pubsub).
pub(crate) const PUBSUB: u8 = 3;

/// The type CLIENT LIST and CLIENT KILL filter on, as Redis's
/// `getClientType`: a master or replica link first, then a subscriber.
pub(crate) fn client_type(c: &crate::client::ClientInfo) -> u8 {
    let kind = c.kind.load(Ordering::Relaxed);
    if kind == crate::client::NORMAL && c.pubsub.active() {
        PUBSUB
    } else if kind == crate::client::MONITOR {
        // Redis marks a monitor a replica, but shows it as a normal client.
        crate::client::NORMAL
    } else {
        kind
    }
}

/// Bytes published to subscribers and not yet sent, all subscribers
/// together (the server's part of `maxmemory-clients`'s sum, see
/// `outbuf::ClientMemory`). One per process, as a server is.
static PENDING: AtomicUsize = AtomicUsize::new(0);

/// Bytes published to subscribers and not yet sent, in all.
pub(crate) fn pending_total() -> usize {
    PENDING.load(Ordering::Relaxed)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One message on its way to its subscribers, encoded once for all of
/// them: every subscriber's queue holds the same bytes (a reference count
/// apiece), and a drain copies them into the output as they are.
#[derive(Debug, Clone)]
struct Message {
    /// The whole frame as RESP2 sends it. In RESP3 its first byte (the
    /// array's `*`) becomes the push type's `>`: the rest is the same.
    frame: Bytes,
    /// What the message counts for against the output limits.
    size: usize,
    /// `frame` was framed for its one receiver and is written as it is (a
    /// client-side caching invalidation).
    raw: bool,
}

impl Message {
    /// A message published to `channel` (through `pattern`, for a pattern
    /// subscription), framed as Redis sends it. Built once per publish, in
    /// one buffer of the exact size.
    fn new(kind: Kind, pattern: Option<&Bytes>, channel: &[u8], payload: &[u8]) -> Message {
        // The array's header and the message's name never change.
        let head: &[u8] = match kind {
            Kind::Channel => b"*3\r\n$7\r\nmessage\r\n",
            Kind::Pattern => b"*4\r\n$8\r\npmessage\r\n",
            Kind::Shard => b"*3\r\n$8\r\nsmessage\r\n",
        };
        let pattern = pattern.map(|p| &p[..]);
        let parts = [pattern, Some(channel), Some(payload)];
        let len = head.len()
            + parts
                .iter()
                .flatten()
                .map(|p| bulk_len(p.len()))
                .sum::<usize>();
        let mut frame = Vec::with_capacity(len);
        frame.extend_from_slice(head);
        for part in parts.into_iter().flatten() {
            put_bulk(&mut frame, part);
        }
        debug_assert_eq!(frame.len(), len);
        Message {
            frame: Bytes::from(frame),
            size: channel.len() + payload.len() + pattern.map_or(0, <[u8]>::len) + FRAMING,
            raw: false,
        }
    }

    /// Queues the message for each of `subs`, in order. The last one takes
    /// it without a clone: a single subscriber costs no shared count.
    fn push_to(self, subs: &[Arc<Subscriber>], limits: &Limits, clock: Clock) {
        let Some((last, rest)) = subs.split_last() else {
            return;
        };
        let wide = subs.len() >= WIDE;
        for sub in rest {
            sub.push(self.clone(), limits, clock, wide);
        }
        last.push(self, limits, clock, wide);
    }

    /// Writes the message in the receiver's protocol: an array in RESP2, a
    /// push in RESP3.
    fn encode(&self, out: &mut Output, proto: Protocol) {
        let frame = if self.raw || proto != Protocol::Resp3 {
            &self.frame[..]
        } else {
            out.put_u8(b'>');
            &self.frame[1..]
        };
        // A large message goes out from the publisher's one copy, shared
        // by every subscriber, rather than copied into each output.
        if frame.len() < Output::SHARE_FROM {
            out.put_slice(frame);
        } else {
            let skip = self.frame.len() - frame.len();
            out.put_shared(self.frame.slice(skip..));
        }
    }
}

/// Bytes of a bulk string of `len` bytes: `$`, the length, CRLF, the
/// bytes, CRLF.
fn bulk_len(len: usize) -> usize {
    // 1 to 20 digits.
    len + 6 + len.checked_ilog10().unwrap_or(0) as usize
}

/// Appends `bytes` as a bulk string.
fn put_bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = bytes.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push(b'$');
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// The header of a pub/sub message or (un)subscribe confirmation: `*n` in
/// RESP2, the push type `>n` in RESP3.
pub(crate) fn push_header(out: &mut Output, proto: Protocol, len: usize) {
    let marker = if proto == Protocol::Resp3 { b'>' } else { b'*' };
    resp::write_header(out, marker, len);
}

/// `client-output-buffer-limit pubsub`, read on every push, so kept in
/// atomics outside the config's lock.
#[derive(Debug)]
struct Limits {
    /// Bytes; 0 for none.
    hard: AtomicU64,
    /// Bytes; 0 for none.
    soft: AtomicU64,
    /// How long pending output may stay over the soft limit, in seconds.
    soft_secs: AtomicU64,
}

/// A subscriber's queue: messages published and not yet drained, and the
/// accounting of its pending output.
#[derive(Debug, Default)]
struct Queue {
    messages: VecDeque<Message>,
    /// Bytes queued, plus bytes drained into the output and not yet sent:
    /// what the output limits bound.
    pending: usize,
    /// Of `pending`, the bytes drained since the last flush.
    drained: usize,
    /// Since when (Unix ms) `pending` has been over the soft limit.
    soft_since: Option<i64>,
    /// Cut off for a limit: nothing more is queued.
    closed: bool,
}

/// The subscriptions a client holds, each with the order it was made in:
/// an unsubscribe from everything answers in that order.
#[derive(Debug, Default)]
struct Subs {
    channels: HashMap<Bytes, u64>,
    patterns: HashMap<Bytes, u64>,
    shard: HashMap<Bytes, u64>,
    next: u64,
}

impl Subs {
    fn of(&mut self, kind: Kind) -> &mut HashMap<Bytes, u64> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    /// The count a confirmation reports: channels and patterns together,
    /// shard channels apart, as Redis counts them.
    fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Channel | Kind::Pattern => self.channels.len() + self.patterns.len(),
            Kind::Shard => self.shard.len(),
        }
    }

    fn total(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shard.len()
    }
}

/// One client's side of pub/sub: its subscriptions and its message queue.
/// Every client has one (in its `ClientInfo`); the registry holds it while
/// it subscribes to anything.
#[derive(Debug)]
pub(crate) struct Subscriber {
    id: u64,
    /// The client's kill switch, pulled when a limit is passed.
    kill: crate::kill::Kill,
    subs: Mutex<Subs>,
    /// Whether it holds any subscription (Redis's `CLIENT_PUBSUB`), read
    /// for every command the client sends.
    active: AtomicBool,
    /// Whether pushes may come without a subscription (client-side
    /// caching invalidations): the connection then waits for them too.
    pushes: AtomicBool,
    queue: Mutex<Queue>,
    /// Set by a push, cleared by a drain: a drain with nothing queued costs
    /// no lock.
    queued: AtomicBool,
    /// Set by a push of a message published to [`WIDE`] subscribers or
    /// more, cleared by [`Subscriber::take_wide`].
    wide: AtomicBool,
    /// Wakes the connection task when a message is queued.
    wake: tokio::sync::Notify,
}

impl Subscriber {
    /// The pub/sub side of client `id`, killed through `kill`.
    pub(crate) fn new(id: u64, kill: crate::kill::Kill) -> Arc<Subscriber> {
        Arc::new(Subscriber {
            id,
            kill,
            subs: Mutex::default(),
            active: AtomicBool::new(false),
            pushes: AtomicBool::new(false),
            queue: Mutex::default(),
            queued: AtomicBool::new(false),
            wide: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// Whether the client holds any subscription.
    pub(crate) fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Whether the connection waits for messages while idle: it holds a
    /// subscription or may receive invalidations.
    pub(crate) fn listening(&self) -> bool {
        self.active() || self.pushes.load(Ordering::Relaxed)
    }

    /// Lets invalidations reach the client while it is idle (from then
    /// on: a connection that once tracked keeps waiting, cheaply).
    pub(crate) fn expect_pushes(&self) {
        self.pushes.store(true, Ordering::Relaxed);
    }

    /// Channels, patterns and shard channels subscribed (CLIENT LIST's
    /// `sub`, `psub`, `ssub`).
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        let subs = lock(&self.subs);
        (subs.channels.len(), subs.patterns.len(), subs.shard.len())
    }

    /// Bytes published to the client and not yet sent (CLIENT LIST's
    /// `omem` part).
    pub(crate) fn pending(&self) -> usize {
        lock(&self.queue).pending
    }

    /// Completes when a message is queued (at once if one was queued since
    /// the last wait).
    pub(crate) async fn notified(&self) {
        self.wake.notified().await;
    }

    /// Whether a message published to [`WIDE`] subscribers or more was
    /// queued since the last call: its write waits for the end of the
    /// worker's turn.
    pub(crate) fn take_wide(&self) -> bool {
        self.wide.load(Ordering::Relaxed) && self.wide.swap(false, Ordering::Relaxed)
    }

    /// Queues `message`, or cuts the client off if that takes its pending
    /// output past a limit. `clock` reads the time in Unix ms, only once
    /// the soft limit is passed. `wide`: it was published to [`WIDE`]
    /// subscribers or more.
    fn push(&self, message: Message, limits: &Limits, clock: Clock, wide: bool) {
        let mut q = lock(&self.queue);
        if q.closed {
            return;
        }
        q.pending += message.size;
        PENDING.fetch_add(message.size, Ordering::Relaxed);
        q.messages.push_back(message);
        let pending = q.pending as u64;
        let hard = limits.hard.load(Ordering::Relaxed);
        let soft = limits.soft.load(Ordering::Relaxed);
        let mut over = hard > 0 && pending >= hard;
        if soft > 0 && pending >= soft {
            // Redis's soft limit: over it continuously for longer than its
            // seconds. The clock is read only once over it.
            let now = clock();
            let since = *q.soft_since.get_or_insert(now);
            let secs = limits.soft_secs.load(Ordering::Relaxed);
            over |= (now - since) / 1000 > secs as i64;
        } else {
            q.soft_since = None;
        }
        if over {
            q.closed = true;
            q.messages = VecDeque::new();
            drop(q);
            tracing::info!(
                id = self.id,
                "client closed for overcoming of output buffer limits (pubsub)"
            );
            self.kill.cancel();
            return;
        }
        // Only the first message since the last drain wakes the
        // connection: the later ones find it woken already (its wake-up
        // is stored until it waits again, and a drain clears the flag
        // before it takes the queue).
        let woken = self.queued.load(Ordering::Relaxed) || self.queued.swap(true, Ordering::AcqRel);
        if wide && !self.wide.load(Ordering::Relaxed) {
            self.wide.store(true, Ordering::Relaxed);
        }
        drop(q);
        if !woken {
            self.wake.notify_one();
        }
    }

    /// Writes every queued message into `out`, in the client's protocol.
    /// They stay counted as pending until [`Subscriber::flushed`].
    pub(crate) fn drain(&self, out: &mut Output, proto: Protocol) {
        if !self.queued.swap(false, Ordering::Acquire) {
            return;
        }
        let messages = {
            let mut q = lock(&self.queue);
            let messages = std::mem::take(&mut q.messages);
            q.drained += messages.iter().map(|m| m.size).sum::<usize>();
            messages
        };
        for message in &messages {
            message.encode(out, proto);
        }
    }

    /// The output was sent: what was drained is no longer pending.
    pub(crate) fn flushed(&self) {
        let mut q = lock(&self.queue);
        if q.drained > 0 {
            let sent = q.drained.min(q.pending);
            q.pending -= sent;
            PENDING.fetch_sub(sent, Ordering::Relaxed);
            q.drained = 0;
        }
    }

    /// The client is gone or going (closed, evicted): nothing more is
    /// queued, and what was is no longer counted.
    pub(crate) fn release(&self) {
        let mut q = lock(&self.queue);
        q.closed = true;
        q.messages = VecDeque::new();
        PENDING.fetch_sub(q.pending, Ordering::Relaxed);
        q.pending = 0;
        q.drained = 0;
    }

    /// The client's subscriptions of `kind`, oldest first.
    pub(crate) fn names(&self, kind: Kind) -> Vec<Bytes> {
        let mut subs = lock(&self.subs);
        let mut names: Vec<(u64, Bytes)> = subs
            .of(kind)
            .iter()
            .map(|(name, &seq)| (seq, name.clone()))
            .collect();
        names.sort_unstable_by_key(|(seq, _)| *seq);
        names.into_iter().map(|(_, name)| name).collect()
    }
}

/// One channel and its subscribers, in the order they subscribed.
#[derive(Debug)]
struct Channel {
    name: Bytes,
    /// The name's hash, which also picked the registry shard.
    hash: u64,
    subs: Vec<Arc<Subscriber>>,
}

type Shard = HashTable<Channel>;

/// Channel name to subscribers, spread over [`SHARDS`] locks. A name is
/// hashed once per lookup: the one hash picks the shard and finds the
/// channel in it.
#[derive(Debug)]
struct Registry {
    shards: Vec<Mutex<Shard>>,
    /// Channels with at least one subscriber (INFO).
    channels: AtomicUsize,
}

impl Registry {
    fn new() -> Registry {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            channels: AtomicUsize::new(0),
        }
    }

    /// The shard that holds `channel`, locked, and the name's hash.
    fn shard(&self, channel: &[u8]) -> (MutexGuard<'_, Shard>, u64) {
        let hash = twox_hash::XxHash3_64::oneshot(channel);
        (lock(&self.shards[hash as usize % SHARDS]), hash)
    }

    fn add(&self, channel: Bytes, sub: &Arc<Subscriber>) {
        let (mut shard, hash) = self.shard(&channel);
        let entry = shard.entry(hash, |c| c.name == channel, |c| c.hash);
        let entry = entry.or_insert_with(|| {
            self.channels.fetch_add(1, Ordering::Relaxed);
            Channel {
                name: channel.clone(),
                hash,
                subs: Vec::new(),
            }
        });
        entry.into_mut().subs.push(sub.clone());
    }

    fn remove(&self, channel: &[u8], id: u64) {
        let (mut shard, hash) = self.shard(channel);
        if let Ok(mut entry) = shard.find_entry(hash, |c| c.name == channel) {
            let subs = &mut entry.get_mut().subs;
            subs.retain(|s| s.id != id);
            // A channel nobody listens to is forgotten, so that many
            // short-lived channels do not pile up.
            if subs.is_empty() {
                entry.remove();
                self.channels.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn subscribers(&self, channel: &[u8]) -> usize {
        let (shard, hash) = self.shard(channel);
        shard
            .find(hash, |c| c.name == channel)
            .map_or(0, |c| c.subs.len())
    }

    /// Channels matching `pattern` (all without one).
    fn list(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let mut names = Vec::new();
        for shard in &self.shards {
            let shard = lock(shard);
            names.extend(
                shard
                    .iter()
                    .filter(|c| pattern.is_none_or(|p| store::glob::matches(p, &c.name, false)))
                    .map(|c| c.name.clone()),
            );
        }
        names
    }

    /// Pushes a message to every subscriber of `channel`; how many.
    fn deliver(
        &self,
        kind: Kind,
        channel: &[u8],
        payload: &[u8],
        limits: &Limits,
        clock: Clock,
    ) -> usize {
        let (shard, hash) = self.shard(channel);
        let Some(found) = shard.find(hash, |c| c.name == channel) else {
            return 0;
        };
        Message::new(kind, None, channel, payload).push_to(&found.subs, limits, clock);
        found.subs.len()
    }
}

/// The server's pub/sub state.
#[derive(Debug)]
pub(crate) struct Hub {
    channels: Registry,
    shard_channels: Registry,
    /// Patterns and their subscribers, in the order first subscribed.
    patterns: RwLock<Vec<(Bytes, Vec<Arc<Subscriber>>)>>,
    /// How many patterns there are: PUBLISH skips the list at 0.
    npatterns: AtomicUsize,
    limits: Limits,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            channels: Registry::new(),
            shard_channels: Registry::new(),
            patterns: RwLock::default(),
            npatterns: AtomicUsize::new(0),
            limits: Limits {
                hard: AtomicU64::new(32 << 20),
                soft: AtomicU64::new(8 << 20),
                soft_secs: AtomicU64::new(60),
            },
        }
    }
}

impl Hub {
    /// Sets `client-output-buffer-limit pubsub`: hard and soft bytes, soft
    /// seconds.
    pub(crate) fn set_limits(&self, (hard, soft, secs): (i64, i64, i64)) {
        let limits = &self.limits;
        limits.hard.store(hard.max(0) as u64, Ordering::Relaxed);
        limits.soft.store(soft.max(0) as u64, Ordering::Relaxed);
        limits
            .soft_secs
            .store(secs.max(0) as u64, Ordering::Relaxed);
    }

    fn registry(&self, kind: Kind) -> &Registry {
        match kind {
            Kind::Shard => &self.shard_channels,
            _ => &self.channels,
        }
    }

    /// Subscribes `sub` to `name`; returns the count its confirmation
    /// reports. Subscribing twice changes nothing.
    pub(crate) fn subscribe(&self, sub: &Arc<Subscriber>, kind: Kind, name: &[u8]) -> usize {
        let mut subs = lock(&sub.subs);
        if !subs.of(kind).contains_key(name) {
            let name = Bytes::copy_from_slice(name);
            let seq = subs.next;
            subs.next += 1;
            subs.of(kind).insert(name.clone(), seq);
            if kind == Kind::Pattern {
                let mut patterns = self
                    .patterns
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                match patterns.iter_mut().find(|(p, _)| *p == name) {
                    Some((_, list)) => list.push(sub.clone()),
                    None => {
                        patterns.push((name, vec![sub.clone()]));
                        self.npatterns.fetch_add(1, Ordering::Relaxed);
                    }
                }
            } else {
                self.registry(kind).add(name, sub);
            }
            sub.active.store(true, Ordering::Relaxed);
        }
        subs.count(kind)
    }

    /// Unsubscribes `sub` from `name`; returns the count its confirmation
    /// reports.
    pub(crate) fn unsubscribe(&self, sub: &Subscriber, kind: Kind, name: &[u8]) -> usize {
        let mut subs = lock(&sub.subs);
        if subs.of(kind).remove(name).is_some() {
            if kind == Kind::Pattern {
                let mut patterns = self
                    .patterns
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                if let Some(at) = patterns.iter().position(|(p, _)| p == name) {
                    patterns[at].1.retain(|s| s.id != sub.id);
                    if patterns[at].1.is_empty() {
                        patterns.remove(at);
                        self.npatterns.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            } else {
                self.registry(kind).remove(name, sub.id);
            }
            sub.active.store(subs.total() > 0, Ordering::Relaxed);
        }
        subs.count(kind)
    }

    /// Drops every subscription of `sub`, telling it nothing (RESET, and a
    /// connection that closes).
    pub(crate) fn leave(&self, sub: &Subscriber) {
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            for name in sub.names(kind) {
                self.unsubscribe(sub, kind, &name);
            }
        }
    }

    /// Delivers `payload` to the subscribers of `channel` and of the
    /// patterns it matches (shard channels: to that channel's subscribers
    /// only); returns how many received it.
    pub(crate) fn publish(&self, shard: bool, channel: &[u8], payload: &[u8]) -> usize {
        self.publish_at(shard, channel, payload, &crate::server::now_ms)
    }

    /// [`Hub::publish`] with the clock the soft limit is timed by.
    fn publish_at(&self, shard: bool, channel: &[u8], payload: &[u8], clock: Clock) -> usize {
        if shard {
            return self
                .shard_channels
                .deliver(Kind::Shard, channel, payload, &self.limits, clock);
        }
        let mut receivers =
            self.channels
                .deliver(Kind::Channel, channel, payload, &self.limits, clock);
        if self.npatterns.load(Ordering::Relaxed) > 0 {
            let patterns = self.patterns.read().unwrap_or_else(PoisonError::into_inner);
            for (pattern, subs) in patterns.iter() {
                if !store::glob::matches(pattern, channel, false) {
                    continue;
                }
                Message::new(Kind::Pattern, Some(pattern), channel, payload).push_to(
                    subs,
                    &self.limits,
                    clock,
                );
                receivers += subs.len();
            }
        }
        receivers
    }

    /// Queues `frame`, a whole frame for `sub` (a client-side caching
    /// invalidation), under the same output limits as messages.
    pub(crate) fn push_frame(&self, sub: &Subscriber, frame: Bytes) {
        sub.push(
            Message {
                size: frame.len() + FRAMING,
                frame,
                raw: true,
            },
            &self.limits,
            &crate::server::now_ms,
            false,
        );
    }

    /// Channels (or shard channels) with subscribers, matching `pattern`.
    pub(crate) fn channels(&self, shard: bool, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let kind = if shard { Kind::Shard } else { Kind::Channel };
        self.registry(kind).list(pattern)
    }

    /// Subscribers of one channel (or shard channel), patterns not counted.
    pub(crate) fn subscribers(&self, shard: bool, channel: &[u8]) -> usize {
        let kind = if shard { Kind::Shard } else { Kind::Channel };
        self.registry(kind).subscribers(channel)
    }

    /// INFO's `pubsub_channels`.
    pub(crate) fn channel_count(&self) -> usize {
        self.channels.channels.load(Ordering::Relaxed)
    }

    /// INFO's `pubsub_patterns` and PUBSUB NUMPAT: distinct patterns.
    pub(crate) fn pattern_count(&self) -> usize {
        self.npatterns.load(Ordering::Relaxed)
    }

    /// INFO's `pubsubshard_channels`.
    pub(crate) fn shard_channel_count(&self) -> usize {
        self.shard_channels.channels.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    fn drained(sub: &Subscriber, proto: Protocol) -> Vec<u8> {
        let mut out = Output::new();
        sub.drain(&mut out, proto);
        out.into_pieces().concat()
    }

    #[test]
    fn channels_patterns_and_shards_deliver_apart() {
        let hub = Hub::default();
        let a = Subscriber::new(1, crate::kill::Kill::new());
        let b = Subscriber::new(2, crate::kill::Kill::new());
        assert_eq!(hub.subscribe(&a, Kind::Channel, b"news"), 1);
        assert_eq!(hub.subscribe(&a, Kind::Channel, b"news"), 1);
        assert_eq!(hub.subscribe(&a, Kind::Pattern, b"n*"), 2);
        assert_eq!(hub.subscribe(&b, Kind::Shard, b"news"), 1);
        let (ch, msg) = (Bytes::from_static(b"news"), Bytes::from_static(b"hi"));
        assert_eq!(hub.publish(false, &ch, &msg), 2);
        assert_eq!(hub.publish(true, &ch, &msg), 1);
        assert_eq!(
            drained(&a, Protocol::Resp2),
            b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n\
              *4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        assert_eq!(
            drained(&b, Protocol::Resp3),
            b">3\r\n$8\r\nsmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        assert_eq!(
            (
                hub.channel_count(),
                hub.pattern_count(),
                hub.shard_channel_count()
            ),
            (1, 1, 1)
        );
        hub.leave(&a);
        hub.leave(&b);
        assert!(!a.active() && !b.active());
        assert_eq!(
            (
                hub.channel_count(),
                hub.pattern_count(),
                hub.shard_channel_count()
            ),
            (0, 0, 0)
        );
        assert_eq!(hub.publish(false, &ch, &msg), 0);
    }

    #[test]
    fn a_message_is_framed_once_as_redis_frames_it() {
        for len in [0, 1, 9, 10, 99, 100, 12_345] {
            let mut out = Vec::new();
            put_bulk(&mut out, &vec![b'x'; len]);
            assert_eq!(out.len(), bulk_len(len), "{len}");
        }
        let pattern = Bytes::from_static(b"n*");
        let cases = [
            (Kind::Channel, None, "message"),
            (Kind::Pattern, Some(&pattern), "pmessage"),
            (Kind::Shard, None, "smessage"),
        ];
        for (kind, pattern, name) in cases {
            let message = Message::new(kind, pattern, b"news", b"0123456789");
            let mut want = BytesMut::new();
            let len = if pattern.is_some() { 4 } else { 3 };
            resp::write_header(&mut want, b'*', len);
            resp::write_bulk(&mut want, name.as_bytes());
            if let Some(pattern) = pattern {
                resp::write_bulk(&mut want, pattern);
            }
            resp::write_bulk(&mut want, b"news");
            resp::write_bulk(&mut want, b"0123456789");
            assert_eq!(message.frame, want);
            assert_eq!(
                message.size,
                4 + 10 + pattern.map_or(0, Bytes::len) + FRAMING
            );
            let mut out = Output::new();
            message.encode(&mut out, Protocol::Resp3);
            want[0] = b'>';
            assert_eq!(out.into_pieces().concat(), want);
        }
    }

    #[test]
    fn a_large_message_is_shared_by_its_subscribers_and_a_raw_frame_kept() {
        let hub = Hub::default();
        let a = Subscriber::new(1, crate::kill::Kill::new());
        let b = Subscriber::new(2, crate::kill::Kill::new());
        hub.subscribe(&a, Kind::Channel, b"c");
        hub.subscribe(&b, Kind::Channel, b"c");
        let payload = vec![b'x'; Output::SHARE_FROM];
        assert_eq!(hub.publish(false, b"c", &payload), 2);
        let (mut out_a, mut out_b) = (Output::new(), Output::new());
        a.drain(&mut out_a, Protocol::Resp2);
        b.drain(&mut out_b, Protocol::Resp3);
        let (pieces_a, pieces_b) = (out_a.into_pieces(), out_b.into_pieces());
        // One copy of the frame, in both outputs; RESP3's `>` before it.
        assert_eq!(pieces_a.len(), 1);
        assert_eq!(&pieces_b[0][..], b">");
        assert_eq!(pieces_a[0].as_ptr().wrapping_add(1), pieces_b[1].as_ptr());
        let head = format!("*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n${}\r\n", payload.len());
        assert!(pieces_a[0].starts_with(head.as_bytes()));
        assert!(pieces_a[0].ends_with(b"x\r\n"));
        assert_eq!(pieces_a[0].len(), head.len() + payload.len() + 2);
        // An invalidation was framed for its receiver: sent as it is.
        hub.push_frame(&b, Bytes::from_static(b">2\r\n$10\r\ninvalidate\r\n_\r\n"));
        assert_eq!(
            drained(&b, Protocol::Resp3),
            b">2\r\n$10\r\ninvalidate\r\n_\r\n"
        );
    }

    #[test]
    fn unsubscribe_all_answers_in_subscription_order() {
        let hub = Hub::default();
        let a = Subscriber::new(1, crate::kill::Kill::new());
        for name in ["c", "a", "b"] {
            hub.subscribe(&a, Kind::Channel, name.as_bytes());
        }
        assert_eq!(a.names(Kind::Channel), ["c", "a", "b"]);
        assert_eq!(hub.unsubscribe(&a, Kind::Channel, b"a"), 2);
        assert_eq!(hub.unsubscribe(&a, Kind::Channel, b"zz"), 2);
        assert_eq!(a.counts(), (2, 0, 0));
    }

    #[test]
    fn past_the_hard_limit_the_subscriber_is_cut_off() {
        let hub = Hub::default();
        hub.set_limits((1000, 0, 0));
        let kill = crate::kill::Kill::new();
        let a = Subscriber::new(1, kill.clone());
        hub.subscribe(&a, Kind::Channel, b"c");
        let (ch, msg) = (Bytes::from_static(b"c"), Bytes::from(vec![b'x'; 300]));
        for _ in 0..2 {
            hub.publish(false, &ch, &msg);
        }
        // Sent: no longer pending.
        let _ = drained(&a, Protocol::Resp2);
        a.flushed();
        assert_eq!(a.pending(), 0);
        for _ in 0..2 {
            hub.publish(false, &ch, &msg);
        }
        assert!(!kill.is_cancelled());
        hub.publish(false, &ch, &msg);
        assert!(kill.is_cancelled());
        assert!(drained(&a, Protocol::Resp2).is_empty());
    }

    #[test]
    fn over_the_soft_limit_longer_than_its_seconds_the_subscriber_is_cut_off() {
        let hub = Hub::default();
        hub.set_limits((0, 1000, 2));
        let kill = crate::kill::Kill::new();
        let a = Subscriber::new(1, kill.clone());
        hub.subscribe(&a, Kind::Channel, b"c");
        let (ch, msg) = (Bytes::from_static(b"c"), Bytes::from(vec![b'x'; 600]));
        let publish_at = |ms: i64| hub.publish_at(false, &ch, &msg, &move || ms);
        publish_at(0);
        // Over it from 10 s on.
        publish_at(10_000);
        publish_at(12_000);
        assert!(!kill.is_cancelled());
        // Back under it: the time over it starts again.
        let _ = drained(&a, Protocol::Resp2);
        a.flushed();
        publish_at(12_500);
        assert!(lock(&a.queue).soft_since.is_none());
        publish_at(13_000);
        publish_at(15_999);
        assert!(!kill.is_cancelled());
        // More than 2 s over it.
        publish_at(16_000);
        assert!(kill.is_cancelled());
        assert_eq!(lock(&a.queue).messages.len(), 0);
    }
}

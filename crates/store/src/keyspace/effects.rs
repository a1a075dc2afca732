//! What one command did that others must hear about, collected while it
//! runs: its changes (Redis's `server.dirty`) and, when it records for
//! replicas, the commands a replica must run to do the same.
//!
//! A command's [`Effects`] belong to its lock set (`Shards`): the keyspace
//! appends to them as things happen (an expired key deleted, a value
//! changed), the command's handler appends what it asks for (a rewrite of
//! itself, a pop served to a blocked client), and the server drains them
//! before the command's locks drop. They are dropped with the command, so
//! a panic leaves nothing behind for the next one.

/// One command for the replication stream (and, later, the append-only
/// file): its database (`None` for commands that do not depend on one,
/// such as PING) and its arguments, encoded as a RESP array of bulk
/// strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The database the command runs in.
    pub db: Option<usize>,
    /// The command, as RESP.
    pub bytes: Vec<u8>,
}

impl Op {
    /// A command on database `db`.
    pub fn new<A: AsRef<[u8]>>(db: Option<usize>, args: &[A]) -> Op {
        Op::from_iter(db, args.iter().map(AsRef::as_ref))
    }

    /// A command on database `db`, its arguments from an iterator.
    pub fn from_iter<'a>(db: Option<usize>, args: impl ExactSizeIterator<Item = &'a [u8]>) -> Op {
        let mut bytes = Vec::with_capacity(16 * (args.len() + 1));
        encode_into(&mut bytes, args);
        Op { db, bytes }
    }

    /// `DEL key` on database `db`: how a key deleted because it expired
    /// or was evicted reaches replicas.
    pub fn del(db: usize, key: &[u8]) -> Op {
        Op::new(Some(db), &[&b"DEL"[..], key])
    }

    /// `UNLINK key` on database `db`: the same, when the server freed the
    /// value lazily (`lazyfree-lazy-expire`, `lazyfree-lazy-eviction`), as
    /// Redis's `propagateDeletion` tells replicas.
    pub fn unlink(db: usize, key: &[u8]) -> Op {
        Op::new(Some(db), &[&b"UNLINK"[..], key])
    }
}

/// Appends a RESP array of bulk strings.
pub fn encode_into<'a>(out: &mut Vec<u8>, args: impl ExactSizeIterator<Item = &'a [u8]>) {
    fn header(out: &mut Vec<u8>, kind: u8, n: usize) {
        out.push(kind);
        out.extend_from_slice(n.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    header(out, b'*', args.len());
    for arg in args {
        header(out, b'$', arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// One command's effects; see the module's notes.
#[derive(Debug, Default)]
pub struct Effects {
    /// Whether the command records what it changes for replicas. Chosen
    /// by whoever runs it (a master feeding replicas holds the command's
    /// keys and turns this on), read by the keyspace: expired keys are
    /// deleted, and reported, only by a recording command where deletions
    /// must reach the stream in order.
    recording: bool,
    /// Changes made so far.
    dirty: u64,
    /// Ready for the stream, in order.
    ops: Vec<Op>,
    /// Where in `ops` each unit after the first begins: a unit reaches
    /// replicas wrapped in MULTI/EXEC when it holds more than one command.
    /// The command's own effects are one unit, each pop served to a
    /// blocked client another (Redis serves them after the command).
    units: Vec<usize>,
    /// What the running command asked to propagate instead of itself.
    rewrite: Option<Vec<Op>>,
    /// The keyspace event classes wanted ([`class`] bits; 0: none, and
    /// [`Effects::event`] costs one test).
    notify: u32,
    /// Keyspace events raised so far, in order, for the server to publish.
    events: Vec<Event>,
    /// Whether changed keys are recorded (client-side caching: someone
    /// tracks keys).
    track: bool,
    /// Keys changed so far (any database), for the server to invalidate.
    changed_keys: Vec<bytes::Bytes>,
    /// Which of the keyspace's own drops are lazy (`lazy.rs`'s bits).
    lazy: u8,
    /// Large values the keyspace dropped, kept for the lazy-free thread
    /// (see `lazy.rs`).
    garbage: Vec<crate::value::Value>,
    /// Keys deleted because they were met past their deadline, by a
    /// command or the expiry cycle, for INFO's `expired_keys`.
    expired_on_access: u64,
    /// The command only reads (`Shards::read_only`): a lookup keeps no
    /// old value for a running snapshot (see `snapshot.rs`).
    pub(super) reads: bool,
}

/// Keyspace event classes, as bits (Redis's `NOTIFY_*` in notify.c, the
/// letters of `notify-keyspace-events`).
pub mod class {
    /// `K`: publish on `__keyspace@<db>__:<key>`.
    pub const KEYSPACE: u32 = 1 << 0;
    /// `E`: publish on `__keyevent@<db>__:<event>`.
    pub const KEYEVENT: u32 = 1 << 1;
    /// `g`: generic commands (DEL, EXPIRE, RENAME...).
    pub const GENERIC: u32 = 1 << 2;
    /// `$`: string commands.
    pub const STRING: u32 = 1 << 3;
    /// `l`: list commands.
    pub const LIST: u32 = 1 << 4;
    /// `s`: set commands.
    pub const SET: u32 = 1 << 5;
    /// `h`: hash commands.
    pub const HASH: u32 = 1 << 6;
    /// `z`: sorted set commands.
    pub const ZSET: u32 = 1 << 7;
    /// `x`: a key deleted because it expired.
    pub const EXPIRED: u32 = 1 << 8;
    /// `e`: a key evicted for `maxmemory`.
    pub const EVICTED: u32 = 1 << 9;
    /// `t`: stream commands.
    pub const STREAM: u32 = 1 << 10;
    /// `m`: a read that found no key (not part of `A`).
    pub const KEY_MISS: u32 = 1 << 11;
    /// `d`: module events.
    pub const MODULE: u32 = 1 << 13;
    /// `n`: a key created (not part of `A`).
    pub const NEW: u32 = 1 << 14;
    /// `A`: `g$lshzxetd`.
    pub const ALL: u32 =
        GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;
}

/// One keyspace event: its [`class`], its name (`set`, `expired`...), and
/// the key and database it happened to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its class, one [`class`] bit.
    pub class: u32,
    /// Its name, as Redis spells it.
    pub name: &'static str,
    /// The database.
    pub db: usize,
    /// The key.
    pub key: bytes::Bytes,
}

impl Effects {
    /// No effects yet, not recording.
    pub fn new() -> Self {
        Effects::default()
    }

    /// No effects yet, not recording, recording keyspace events of
    /// `classes` (see [`Effects::want_events`]), and changed keys if
    /// `track`.
    pub fn with_events(classes: u32, track: bool) -> Self {
        let mut fx = Effects::default();
        fx.want_events(classes);
        fx.track = track;
        fx
    }

    /// `key` changed (its value, its deadline, or it went): recorded for
    /// the clients that cache it, while someone tracks keys.
    #[inline]
    pub fn key_changed(&mut self, key: &[u8]) {
        if self.track {
            self.changed_keys.push(bytes::Bytes::copy_from_slice(key));
        }
    }

    /// The keys changed so far, in order (repeats kept), emptying the
    /// record.
    pub fn take_changed_keys(&mut self) -> Vec<bytes::Bytes> {
        std::mem::take(&mut self.changed_keys)
    }

    /// Whether keys changed since the last
    /// [`Effects::take_changed_keys`].
    #[inline]
    pub fn has_changed_keys(&self) -> bool {
        !self.changed_keys.is_empty()
    }

    /// Whether the command records its changes for replicas.
    #[inline]
    pub fn recording(&self) -> bool {
        self.recording
    }

    /// Starts recording (the caller holds the locks of everything the
    /// command may touch, and drains the record before releasing them).
    pub fn start(&mut self) {
        self.recording = true;
    }

    /// Stops recording and returns what was recorded, unit by unit (none
    /// empty).
    pub fn finish(&mut self) -> Vec<Vec<Op>> {
        self.recording = false;
        self.rewrite = None;
        let mut ops = std::mem::take(&mut self.ops);
        let mut units = Vec::with_capacity(self.units.len() + 1);
        for &at in self.units.iter().rev() {
            units.push(ops.split_off(at));
        }
        self.units.clear();
        if !ops.is_empty() {
            units.push(ops);
        }
        units.reverse();
        units.retain(|u| !u.is_empty());
        units
    }

    /// A change was made (Redis's `server.dirty++`).
    #[inline]
    pub fn changed(&mut self) {
        self.dirty = self.dirty.wrapping_add(1);
    }

    /// `n` more changes: a command that changed several elements at once
    /// counts each, as Redis adds them to `server.dirty`.
    #[inline]
    pub fn changed_by(&mut self, n: u64) {
        self.dirty = self.dirty.wrapping_add(n);
    }

    /// Changes made so far: a caller compares the count before and after
    /// a step to know whether it changed anything.
    #[inline]
    pub fn dirty(&self) -> u64 {
        self.dirty
    }

    /// An expired `key` of database `db` was deleted: replicas delete it
    /// too, before whatever the command does next (`UNLINK` under
    /// `lazyfree-lazy-expire`, else `DEL`).
    pub fn expired(&mut self, db: usize, key: &[u8]) {
        let lazy = self.lazy & super::lazy::EXPIRE != 0;
        self.dropped(db, key, lazy);
    }

    /// The server deleted `key` of database `db` on its own (it expired,
    /// or was evicted): replicas get `UNLINK` if `lazy` (the value freed
    /// lazily), else `DEL`.
    pub fn dropped(&mut self, db: usize, key: &[u8], lazy: bool) {
        if self.recording {
            self.ops.push(match lazy {
                true => Op::unlink(db, key),
                false => Op::del(db, key),
            });
        }
    }

    /// Sets the keyspace event classes wanted ([`class`] bits): events of
    /// other classes are not recorded. Nothing is recorded unless `K` or
    /// `E` is among them, since nothing would be published.
    pub fn want_events(&mut self, classes: u32) {
        self.notify = if classes & (class::KEYSPACE | class::KEYEVENT) != 0 {
            classes
        } else {
            0
        };
    }

    /// Whether events of `class` are recorded (a caller that must work to
    /// name an event asks first).
    #[inline]
    pub fn wants(&self, class: u32) -> bool {
        self.notify & class != 0
    }

    /// Event `name` of `class` happened to `key` of database `db`
    /// (Redis's `notifyKeyspaceEvent`): recorded if the class is wanted.
    #[inline]
    pub fn event(&mut self, class: u32, name: &'static str, db: usize, key: &[u8]) {
        if self.notify & class != 0 {
            self.push_event(class, name, db, key);
        }
    }

    #[cold]
    fn push_event(&mut self, class: u32, name: &'static str, db: usize, key: &[u8]) {
        self.events.push(Event {
            class,
            name,
            db,
            key: bytes::Bytes::copy_from_slice(key),
        });
    }

    /// `key` of database `db` was evicted for `maxmemory` (Redis's
    /// `evicted` event, class `e`): what an eviction calls once it
    /// deletes a key.
    pub fn evicted(&mut self, db: usize, key: &[u8]) {
        self.event(class::EVICTED, "evicted", db, key);
    }

    /// Keeps `value` for the lazy-free thread (see [`Effects::discard`]).
    #[cold]
    pub(super) fn keep_garbage(&mut self, value: crate::value::Value) {
        self.garbage.push(value);
    }

    /// Sets which of the keyspace's own drops are lazy (`lazy.rs`'s
    /// bits); a lock set copies its keyspace's.
    pub fn set_lazy_bits(&mut self, bits: u8) {
        self.lazy = bits;
    }

    /// Which of the keyspace's own drops are lazy.
    #[inline]
    pub fn lazy_bits(&self) -> u8 {
        self.lazy
    }

    /// A key was deleted because it was met past its deadline.
    pub(super) fn count_expired(&mut self) {
        self.expired_on_access += 1;
    }

    /// How many keys were deleted because they were met past their
    /// deadline (by a command or the expiry cycle), since last asked.
    pub fn take_expired_count(&mut self) -> u64 {
        std::mem::take(&mut self.expired_on_access)
    }

    /// The values kept for the lazy-free thread, emptying the record.
    pub fn take_garbage(&mut self) -> Vec<crate::value::Value> {
        std::mem::take(&mut self.garbage)
    }

    /// The events recorded so far, in order, emptying the record.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Whether events were recorded since the last
    /// [`Effects::take_events`].
    #[inline]
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The running command reaches replicas as `ops` instead of as
    /// itself.
    pub fn rewrite(&mut self, ops: Vec<Op>) {
        if self.recording {
            self.rewrite = Some(ops);
        }
    }

    /// What the running command asked to reach replicas as, instead of
    /// itself.
    pub fn take_rewrite(&mut self) -> Option<Vec<Op>> {
        self.rewrite.take()
    }

    /// A further command for replicas, on its own (a pop made for a
    /// blocked client).
    pub fn also(&mut self, op: Op) {
        if self.recording {
            self.begin_unit();
            self.ops.push(op);
        }
    }

    /// What is recorded next reaches replicas apart from what came before
    /// (in a MULTI/EXEC of its own if it is more than one command).
    pub fn begin_unit(&mut self) {
        if !self.recording {
            return;
        }
        let at = self.ops.len();
        if at > 0 && self.units.last() != Some(&at) {
            self.units.push(at);
        }
    }

    /// Appends commands for the stream, after what is already recorded.
    pub fn extend(&mut self, ops: impl IntoIterator<Item = Op>) {
        if self.recording {
            self.ops.extend(ops);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_recorded_unless_recording() {
        let mut fx = Effects::new();
        fx.expired(0, b"k");
        fx.also(Op::del(0, b"x"));
        fx.rewrite(vec![Op::del(0, b"y")]);
        fx.changed();
        assert_eq!(fx.dirty(), 1);
        assert!(fx.take_rewrite().is_none());
        assert!(fx.finish().is_empty());
    }

    #[test]
    fn events_are_recorded_only_for_wanted_classes() {
        let mut fx = Effects::new();
        fx.event(class::GENERIC, "del", 0, b"k");
        assert!(!fx.has_events(), "nothing wanted");
        fx.want_events(class::GENERIC | class::EXPIRED);
        fx.event(class::GENERIC, "del", 0, b"k");
        assert!(!fx.has_events(), "neither K nor E: nothing to publish");
        fx.want_events(class::KEYEVENT | class::GENERIC | class::EXPIRED);
        fx.event(class::STRING, "set", 0, b"k");
        fx.event(class::EXPIRED, "expired", 2, b"a");
        fx.event(class::GENERIC, "del", 3, b"b");
        let names: Vec<_> = fx.take_events().iter().map(|e| (e.name, e.db)).collect();
        assert_eq!(names, [("expired", 2), ("del", 3)]);
        assert!(fx.take_events().is_empty());
    }

    #[test]
    fn units_split_where_asked_and_empty_ones_are_dropped() {
        let mut fx = Effects::new();
        fx.start();
        fx.begin_unit();
        fx.expired(3, b"a");
        fx.extend([Op::new(Some(3), &["SET", "b", "1"])]);
        fx.begin_unit();
        fx.begin_unit();
        fx.also(Op::new(Some(3), &["LPOP", "l"]));
        let units = fx.finish();
        assert_eq!(units.len(), 2);
        assert_eq!(units[0].len(), 2);
        assert_eq!(units[0][0].bytes, b"*2\r\n$3\r\nDEL\r\n$1\r\na\r\n");
        assert_eq!(units[1], vec![Op::new(Some(3), &["LPOP", "l"])]);
        assert!(!fx.recording());
        assert!(fx.finish().is_empty());
    }
}

//! Keyspace notifications (Redis's notify.c): the events a command raised,
//! published on `__keyspace@<db>__:<key>` (the event's name as the
//! message) and `__keyevent@<db>__:<event>` (the key as the message), as
//! `notify-keyspace-events` asks.
//!
//! Events are recorded in the command's `Effects` as they happen: the
//! keyspace records its own (`expired` where it deletes an expired key,
//! `new` where it adds a key), each handler those of its command
//! ([`Notify::notify`], next to each change). Nothing is recorded while
//! no class is configured, so a server without notifications pays one
//! test per event site. The server publishes a command's events after
//! it ran, in the order they were raised ([`publish`]); inside EXEC and
//! scripts, after each command.

use bytes::{BufMut, Bytes, BytesMut};
use store::keyspace::{Effects, Event, class};

use crate::cmd::Ctx;
use crate::db::DbMut;
use crate::server::Shared;

/// `notify-keyspace-events` as class bits (Redis's
/// `keyspaceEventsStringToFlags`). Letters are checked when the
/// parameter is set; an unknown one counts as nothing here.
pub(crate) fn classes(value: &str) -> u32 {
    value.chars().fold(0, |bits, c| {
        bits | match c {
            'A' => class::ALL,
            'g' => class::GENERIC,
            '$' => class::STRING,
            'l' => class::LIST,
            's' => class::SET,
            'h' => class::HASH,
            'z' => class::ZSET,
            'x' => class::EXPIRED,
            'e' => class::EVICTED,
            'K' => class::KEYSPACE,
            'E' => class::KEYEVENT,
            't' => class::STREAM,
            'm' => class::KEY_MISS,
            'd' => class::MODULE,
            'n' => class::NEW,
            _ => 0,
        }
    })
}

/// Raising an event from where a handler stands: a database it holds, or
/// its context once its locks are dropped.
pub(crate) trait Notify {
    /// Event `name` of `class` happened to `key` in the current database.
    fn notify(&mut self, class: u32, name: &'static str, key: &[u8]);
}

impl Notify for DbMut<'_> {
    #[inline]
    fn notify(&mut self, class: u32, name: &'static str, key: &[u8]) {
        let db = self.index;
        self.effects().event(class, name, db, key);
    }
}

impl Notify for Ctx<'_> {
    #[inline]
    fn notify(&mut self, class: u32, name: &'static str, key: &[u8]) {
        let db = self.client.db;
        self.shards.effects().event(class, name, db, key);
    }
}

/// Before a read that counts as a keyspace hit or miss (Redis's
/// `lookupKeyRead`): raises `keymiss` if `key` is not there. Only while
/// class `m` is wanted does it look the key up (deleting it first if it
/// expired, so `expired` comes before `keymiss`, as in Redis).
#[inline]
pub(crate) fn read_miss(db: &mut DbMut<'_>, key: &[u8], now: i64) {
    if db.effects().wants(class::KEY_MISS) && db.peek(key, now).is_none() {
        db.notify(class::KEY_MISS, "keymiss", key);
    }
}

/// Publishes the events recorded in `fx` so far, emptying the record.
#[inline]
pub(crate) fn flush(shared: &Shared, fx: &mut Effects) {
    if fx.has_events() {
        publish(shared, fx.take_events());
    }
}

/// Publishes `events`, in order, as the classes configured now ask (the
/// setting may have changed since they were recorded).
pub(crate) fn publish(shared: &Shared, events: Vec<Event>) {
    let classes = shared.keyspace.notify_classes();
    for event in events {
        if classes & event.class == 0 {
            continue;
        }
        let name = Bytes::from_static(event.name.as_bytes());
        if classes & class::KEYSPACE != 0 {
            let channel = channel("__keyspace@", event.db, &event.key);
            shared.pubsub.publish(false, &channel, &name);
        }
        if classes & class::KEYEVENT != 0 {
            let channel = channel("__keyevent@", event.db, name.as_ref());
            shared.pubsub.publish(false, &channel, &event.key);
        }
    }
}

/// `<prefix><db>__:<tail>`.
fn channel(prefix: &str, db: usize, tail: &[u8]) -> Bytes {
    let db = db.to_string();
    let mut out = BytesMut::with_capacity(prefix.len() + db.len() + 3 + tail.len());
    out.put_slice(prefix.as_bytes());
    out.put_slice(db.as_bytes());
    out.put_slice(b"__:");
    out.put_slice(tail);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_as_redis_parses_them() {
        assert_eq!(classes(""), 0);
        assert_eq!(classes("KEA") & class::NEW, 0, "A leaves n out");
        assert_eq!(classes("KEA") & class::KEY_MISS, 0, "and m");
        assert_ne!(classes("AKEn") & class::NEW, 0);
        assert_eq!(
            classes("Ex"),
            class::KEYEVENT | class::EXPIRED,
            "one class, events only"
        );
        assert_eq!(
            classes("K$lg"),
            class::KEYSPACE | class::STRING | class::LIST | class::GENERIC
        );
    }

    #[test]
    fn channels_are_named_as_redis_names_them() {
        assert_eq!(
            &channel("__keyspace@", 3, b"k:1")[..],
            b"__keyspace@3__:k:1"
        );
        assert_eq!(
            &channel("__keyevent@", 0, b"set")[..],
            b"__keyevent@0__:set"
        );
    }
}

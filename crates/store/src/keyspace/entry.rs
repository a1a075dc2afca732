//! A key's entry: its value and deadline.

use smallvec::SmallVec;

use crate::value::Value;

/// One key's value and deadline. The deadline comes first (`repr(C)`):
/// every lookup reads it, and the start of the value, together (see the
/// keyspace's slot).
#[derive(Debug, Clone)]
#[repr(C)]
pub struct Entry {
    /// Unix time in milliseconds after which the key no longer exists. A
    /// deadline of exactly 0 is stored as `i64::MIN` (it has passed either
    /// way), so that the option takes no room of its own.
    deadline: Option<std::num::NonZeroI64>,
    /// The value.
    pub value: Value,
}

impl Entry {
    /// An entry with no deadline.
    #[inline]
    pub fn new(value: Value) -> Self {
        Entry {
            value,
            deadline: None,
        }
    }

    /// An entry with a deadline (Unix ms), or none.
    pub fn with(value: Value, expire_at: Option<i64>) -> Self {
        let mut entry = Entry::new(value);
        entry.set_expire_at(expire_at);
        entry
    }

    /// The deadline, in Unix milliseconds.
    #[inline]
    pub fn expire_at(&self) -> Option<i64> {
        self.deadline.map(std::num::NonZeroI64::get)
    }

    /// Sets or clears the deadline, in Unix milliseconds.
    #[inline]
    pub fn set_expire_at(&mut self, at: Option<i64>) {
        self.deadline =
            at.map(|at| std::num::NonZeroI64::new(at).unwrap_or(std::num::NonZeroI64::MIN));
    }

    /// Whether the deadline has passed at `now` (Unix milliseconds).
    #[inline]
    pub fn is_expired(&self, now: i64) -> bool {
        self.expire_at().is_some_and(|at| at <= now)
    }
}

/// A stored key: up to 24 bytes inside the slot itself (most keys), longer
/// ones in an allocation of their own. 32 bytes, as a `Bytes` handle is,
/// without the separate allocation a `Bytes` copy of a short key needs.
pub type Key = SmallVec<[u8; 24]>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{Form, Str};

    fn value() -> Value {
        Value::Str(Str::from_slice(b"v", Form::Auto))
    }

    #[test]
    fn deadlines_take_no_room_and_zero_has_passed() {
        assert_eq!(size_of::<Entry>(), 48);
        let mut e = Entry::with(value(), Some(100));
        assert_eq!(e.expire_at(), Some(100));
        assert!(!e.is_expired(99));
        assert!(e.is_expired(100));
        // 0 is stored as i64::MIN: past either way.
        e.set_expire_at(Some(0));
        assert!(e.is_expired(-1));
        e.set_expire_at(None);
        assert!(!e.is_expired(i64::MAX));
        assert_eq!(Entry::new(value()).expire_at(), None);
    }
}

//! A key's entry: its value and deadline.

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

/// How many bytes of a key [`Key`] holds inside itself.
pub const KEY_INLINE: usize = 22;

/// A stored key: up to [`KEY_INLINE`] (22) bytes inside the slot itself
/// (most keys), longer ones in an allocation of their own. 24 bytes, 8
/// fewer than a `SmallVec<[u8; 24]>` or a `Bytes` handle: what brings a
/// keyspace slot down to 80 bytes, in jemalloc's 80-byte class rather than
/// its 96-byte one.
///
/// The two forms are an enum of plain fields, no unsafe code: the
/// discriminant takes the first byte, the inline length the second, and
/// the boxed slice (pointer and length) the last 16. A key is inline
/// exactly when it fits, so two keys are equal when their bytes are.
#[derive(Clone)]
pub struct Key(Repr);

/// [`Key`]'s two forms (private, so that an inline length is never above
/// [`KEY_INLINE`] and a short key is never boxed).
#[derive(Clone)]
enum Repr {
    /// `len` bytes of `bytes` used, the rest zeros.
    Inline { len: u8, bytes: [u8; KEY_INLINE] },
    /// A key longer than [`KEY_INLINE`].
    Boxed(Box<[u8]>),
}

impl Key {
    /// A copy of `key`.
    #[inline]
    pub fn from_slice(key: &[u8]) -> Self {
        match key.len() {
            len @ 0..=KEY_INLINE => {
                let mut bytes = [0; KEY_INLINE];
                bytes[..len].copy_from_slice(key);
                Key(Repr::Inline {
                    len: len as u8,
                    bytes,
                })
            }
            _ => Key(Repr::Boxed(key.into())),
        }
    }

    /// Whether the key lives in an allocation of its own (longer than
    /// [`KEY_INLINE`]).
    #[inline]
    pub fn spilled(&self) -> bool {
        matches!(self.0, Repr::Boxed(_))
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match &self.0 {
            // `len` is never above KEY_INLINE: the slice cannot panic.
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Boxed(b) => b,
        }
    }
}

impl AsRef<[u8]> for Key {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl PartialEq for Key {
    #[inline]
    fn eq(&self, other: &Key) -> bool {
        self[..] == other[..]
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self[..].hash(state);
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", bytes::Bytes::copy_from_slice(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{Form, Str};

    fn value() -> Value {
        Value::Str(Str::from_slice(b"v", Form::Auto))
    }

    #[test]
    fn deadlines_take_no_room_and_zero_has_passed() {
        assert_eq!(size_of::<Entry>(), 32);
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

    #[test]
    fn a_key_takes_24_bytes() {
        assert_eq!(size_of::<Key>(), 24);
        assert_eq!(size_of::<Option<Key>>(), 24);
    }

    #[test]
    fn keys_are_inline_up_to_22_bytes_and_keep_their_bytes() {
        for len in [0, 1, 21, 22, 23, 24, 100, 1 << 20] {
            // Every byte value, zeros included.
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 255) as u8).collect();
            let key = Key::from_slice(&bytes);
            assert_eq!(&key[..], &bytes[..], "len {len}");
            assert_eq!(key.len(), len);
            assert_eq!(key.spilled(), len > KEY_INLINE, "len {len}");
            let copy = key.clone();
            assert_eq!(copy, key);
            assert_eq!(&copy[..], &bytes[..]);
        }
    }

    #[test]
    fn keys_compare_and_hash_by_their_bytes() {
        use std::collections::HashSet;
        let a = Key::from_slice(b"a\0b");
        assert_eq!(a, Key::from_slice(b"a\0b"));
        assert_ne!(a, Key::from_slice(b"a\0"));
        assert_ne!(Key::from_slice(b""), Key::from_slice(b"\0"));
        let long = [b'x'; 40];
        assert_ne!(Key::from_slice(&long), Key::from_slice(&long[..39]));
        let set: HashSet<Key> = [a.clone(), Key::from_slice(&long)].into_iter().collect();
        assert!(set.contains(&b"a\0b"[..]));
        assert!(set.contains(&long[..]));
        assert!(!set.contains(&b"a"[..]));
        assert_eq!(format!("{a:?}"), r#"b"a\0b""#);
    }
}

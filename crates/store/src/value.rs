//! Values stored under keys.

use bytes::{Bytes, BytesMut};

use crate::hash::Hash;
use crate::list::List;
use crate::rdb::strict_i64;
use crate::set::Set;
use crate::zset::ZSet;

/// A key's value.
#[derive(Debug, Clone)]
pub enum Value {
    /// A string.
    Str(Str),
    /// A list. Never empty: the last pop deletes the key. Boxed, so that
    /// strings, the common case, keep entries small.
    List(Box<List>),
    /// A set. Never empty: the last removal deletes the key. Held inline
    /// (32 bytes), so a small set (an intset) costs one allocation, its
    /// array of integers; a big one's table is boxed inside it.
    Set(Set),
    /// A hash. Never empty: removing its last field deletes the key. Held
    /// inline (24 bytes, within the 40 a value takes anyway), so a small
    /// hash costs one allocation, its packed buffer, and no box.
    Hash(Hash),
    /// A sorted set. Never empty: removing its last member deletes the
    /// key. Held inline (its big encoding is boxed inside it).
    ZSet(ZSet),
}

impl Value {
    /// The name TYPE reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::Hash(_) => "hash",
            Value::ZSet(_) => "zset",
        }
    }

    /// The encoding OBJECT ENCODING reports, with Redis's names and
    /// thresholds.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => s.encoding(),
            // Redis 7.0 keeps every list in a quicklist (7.2 added listpack
            // for small ones).
            Value::List(_) => "quicklist",
            Value::Set(s) => s.encoding(),
            Value::Hash(h) => h.encoding(),
            Value::ZSet(z) => z.encoding(),
        }
    }
}

/// Strings up to this long are stored inside the entry.
pub const INLINE: usize = 30;

/// A string value: up to [`INLINE`] bytes inside the entry itself (no
/// allocation of its own), longer ones as a `Bytes` handle. Either way 40
/// bytes, as a handle and its encoding note took before.
#[derive(Clone)]
pub enum Str {
    /// A short string, inside the entry.
    Inline {
        /// How many bytes of `data` are the string's.
        len: u8,
        /// What decides its reported encoding.
        form: Form,
        /// The bytes, then padding.
        data: [u8; INLINE],
    },
    /// A longer string, in a handle of its own.
    Shared {
        /// What decides its reported encoding.
        form: Form,
        /// The bytes.
        bytes: Bytes,
    },
}

/// Writes the decimal text of `n` at the start of `data` (at most 20
/// bytes: "-9223372036854775808"); returns its length.
fn write_i64(data: &mut [u8; INLINE], n: i64) -> u8 {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let mut len = 0;
    if n < 0 {
        data[0] = b'-';
        len = 1;
    }
    let text = &digits[at..];
    data[len..len + text.len()].copy_from_slice(text);
    (len + text.len()) as u8
}

impl std::fmt::Debug for Str {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Str")
            .field("bytes", &Bytes::copy_from_slice(self.bytes()))
            .field("form", &self.form())
            .finish()
    }
}

impl Str {
    /// `bytes`, kept as they are if long, copied inside if short.
    pub fn new(bytes: Bytes, form: Form) -> Str {
        if bytes.len() <= INLINE {
            Str::from_slice(&bytes, form)
        } else {
            Str::Shared { form, bytes }
        }
    }

    /// A copy of `bytes`.
    pub fn from_slice(bytes: &[u8], form: Form) -> Str {
        if bytes.len() <= INLINE {
            let mut data = [0; INLINE];
            data[..bytes.len()].copy_from_slice(bytes);
            Str::Inline {
                len: bytes.len() as u8,
                form,
                data,
            }
        } else {
            Str::Shared {
                form,
                bytes: Bytes::copy_from_slice(bytes),
            }
        }
    }

    /// The decimal text of `n`, written straight into the entry (what
    /// INCR stores), without the allocation `n.to_string()` makes.
    pub fn from_i64(n: i64) -> Str {
        let mut data = [0; INLINE];
        let len = write_i64(&mut data, n);
        Str::Inline {
            len,
            form: Form::Auto,
            data,
        }
    }

    /// Makes this the decimal text of `n` (INCR on a stored number): in
    /// place when the string is already inside the entry, writing only the
    /// bytes the number needs, so that an increment touches no more of the
    /// entry than its first bytes (the rest may sit on a cache line of its
    /// own).
    pub fn set_i64(&mut self, n: i64) {
        match self {
            Str::Inline { len, form, data } => {
                *len = write_i64(data, n);
                *form = Form::Auto;
            }
            Str::Shared { .. } => *self = Str::from_i64(n),
        }
    }

    /// The string's bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Str::Inline { len, data, .. } => &data[..usize::from(*len)],
            Str::Shared { bytes, .. } => bytes,
        }
    }

    /// How Redis would have encoded it, where that is not read off the
    /// bytes.
    pub fn form(&self) -> Form {
        match self {
            Str::Inline { form, .. } | Str::Shared { form, .. } => *form,
        }
    }

    /// The handle of a long string, to send without copying.
    pub fn shared(&self) -> Option<&Bytes> {
        match self {
            Str::Inline { .. } => None,
            Str::Shared { bytes, .. } => Some(bytes),
        }
    }

    /// The bytes as a handle of their own.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Str::Inline { .. } => Bytes::copy_from_slice(self.bytes()),
            Str::Shared { bytes, .. } => bytes.clone(),
        }
    }

    /// Changes the string in place (SETBIT, BITFIELD): grows it with zeros
    /// to at least `min_len` bytes, marks it [`Form::Raw`], and hands `f`
    /// its bytes. A short string is changed inside the entry; a long one
    /// whose handle nobody else holds is changed where it lies, and one
    /// still shared (with a request buffer, a snapshot) is copied once.
    pub fn modify<R>(&mut self, min_len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        match self {
            Str::Inline { len, form, data } if min_len <= INLINE => {
                *form = Form::Raw;
                let old_len = usize::from(*len);
                let new_len = old_len.max(min_len);
                data[old_len..new_len].fill(0);
                *len = new_len as u8;
                f(&mut data[..new_len])
            }
            Str::Inline { len, data, .. } => {
                let mut buf = BytesMut::with_capacity(min_len);
                buf.extend_from_slice(&data[..usize::from(*len)]);
                buf.resize(min_len, 0);
                let r = f(&mut buf);
                *self = Str::Shared {
                    form: Form::Raw,
                    bytes: buf.freeze(),
                };
                r
            }
            Str::Shared { form, bytes } => {
                *form = Form::Raw;
                let mut buf = match std::mem::take(bytes).try_into_mut() {
                    Ok(unique) => unique,
                    Err(shared) => BytesMut::from(&shared[..]),
                };
                if buf.len() < min_len {
                    buf.resize(min_len, 0);
                }
                let r = f(&mut buf);
                *bytes = buf.freeze();
                r
            }
        }
    }
}

/// What decides a string's reported encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The bytes: `int`, `embstr` or `raw` by content and length, as Redis's
    /// `tryObjectEncoding` leaves a value it stores.
    Auto,
    /// Made without `tryObjectEncoding` (INCRBYFLOAT): `embstr` up to 44
    /// bytes even when it reads as an integer.
    Plain,
    /// Changed in place (APPEND, SETRANGE): `raw` whatever it holds.
    Raw,
}

/// Redis's `OBJ_ENCODING_EMBSTR_SIZE_LIMIT`.
const EMBSTR_LIMIT: usize = 44;

impl Str {
    fn encoding(&self) -> &'static str {
        let (bytes, form) = (self.bytes(), self.form());
        if form == Form::Raw {
            "raw"
        } else if form == Form::Auto && bytes.len() <= 20 && strict_i64(bytes).is_some() {
            "int"
        } else if bytes.len() <= EMBSTR_LIMIT {
            "embstr"
        } else {
            "raw"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Short strings inside the entry cost no room: a value is as large as
    /// a `Bytes` handle with its encoding note.
    #[test]
    fn values_stay_small() {
        assert_eq!(size_of::<Str>(), 40);
        assert_eq!(size_of::<Value>(), 40);
    }

    #[test]
    fn integers_are_written_in_place() {
        for n in [
            0,
            1,
            -1,
            9,
            10,
            -10,
            12345,
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
        ] {
            let s = Str::from_i64(n);
            assert_eq!(s.bytes(), n.to_string().as_bytes());
            assert!(s.shared().is_none());
            assert_eq!(s.encoding(), "int");
            // Over a longer inline string, a raw one and a shared one.
            for old in [
                Str::from_slice(b"-9223372036854775808", Form::Raw),
                Str::from_slice(b"x", Form::Raw),
                Str::new(Bytes::from(vec![b'7'; 100]), Form::Auto),
            ] {
                let mut s = old;
                s.set_i64(n);
                assert_eq!(s.bytes(), n.to_string().as_bytes());
                assert_eq!(s.encoding(), "int");
            }
        }
    }

    #[test]
    fn strings_inline_or_shared() {
        let short = Str::from_slice(b"xxx", Form::Plain);
        assert!(short.shared().is_none());
        assert_eq!((short.bytes(), short.form()), (&b"xxx"[..], Form::Plain));
        let long = Bytes::from(vec![b'y'; INLINE + 1]);
        let s = Str::new(long.clone(), Form::Raw);
        assert_eq!(s.shared().map(|b| b.as_ptr()), Some(long.as_ptr()));
        assert_eq!(s.to_bytes(), long);
        let edge = Str::from_slice(&[b'z'; INLINE], Form::Auto);
        assert_eq!(edge.bytes().len(), INLINE);
        assert!(edge.shared().is_none());
    }

    #[test]
    fn modified_in_place() {
        let mut s = Str::from_i64(12);
        s.modify(3, |b| b[2] = b'x');
        assert_eq!((s.bytes(), s.encoding()), (&b"12x"[..], "raw"));
        assert!(s.shared().is_none());
        // Growing past the inline room moves it to a handle.
        s.modify(INLINE + 2, |b| b[INLINE + 1] = 1);
        assert_eq!(s.bytes().len(), INLINE + 2);
        assert_eq!(&s.bytes()[..3], b"12x");
        // A handle nobody else holds is changed where it lies.
        let at = s.shared().map(|b| b.as_ptr());
        s.modify(0, |b| b[0] = b'9');
        assert_eq!(s.shared().map(|b| b.as_ptr()), at);
        assert_eq!(s.bytes()[0], b'9');
        // A shared one is copied, and the other holder keeps its bytes.
        let other = s.to_bytes();
        s.modify(0, |b| b[0] = b'8');
        assert_eq!((other[0], s.bytes()[0]), (b'9', b'8'));
    }
}

//! Values stored under keys.

use bytes::Bytes;

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
pub const INLINE: usize = 22;

/// Strings at least this long keep the handle they come in (a slice of a
/// request's buffer, say) rather than being copied, and are sent from it
/// without a copy either.
pub const KEEP_HANDLE: usize = 32 * 1024;

/// A string value, 24 bytes in any form, so that a key's whole slot fits
/// jemalloc's 64-byte class: up to [`INLINE`] bytes inside the entry
/// itself (no allocation of its own, and its encoding note beside them);
/// longer ones in an allocation of their own sized exactly (a boxed slice,
/// 8 bytes smaller than a `Bytes` handle), the form folded into the
/// variant (a string that long reads as `embstr` or `raw` only); from
/// [`KEEP_HANDLE`] bytes, a boxed `Bytes` handle, shared without copying.
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
    /// A longer string ([`Form::Auto`] or [`Form::Plain`]: the same for
    /// it), copied.
    Heap(Box<[u8]>),
    /// A longer string changed in place ([`Form::Raw`]).
    HeapRaw(Box<[u8]>),
    /// A long string in the handle it came in.
    Shared(Box<Bytes>),
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
    /// `bytes`: kept as they are if very long ([`KEEP_HANDLE`]), copied
    /// otherwise.
    pub fn new(bytes: Bytes, form: Form) -> Str {
        if bytes.len() >= KEEP_HANDLE {
            Str::Shared(Box::new(bytes))
        } else {
            Str::from_slice(&bytes, form)
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
            Str::boxed(bytes.into(), form)
        }
    }

    /// `bytes`, in their own allocation when longer than [`INLINE`] (no
    /// copy unless the vector has room to spare).
    pub fn from_vec(bytes: Vec<u8>, form: Form) -> Str {
        if bytes.len() <= INLINE {
            Str::from_slice(&bytes, form)
        } else {
            Str::boxed(bytes.into_boxed_slice(), form)
        }
    }

    /// Appends `extra` (APPEND), in place when the allocation can grow
    /// where it is; returns the new length. The string reads as `raw`.
    pub fn append(&mut self, extra: &[u8]) -> usize {
        let old = self.bytes().len();
        let len = old + extra.len();
        self.modify(len, |b| b[old..len].copy_from_slice(extra));
        len
    }

    /// A string longer than [`INLINE`] in the allocation `bytes`.
    fn boxed(bytes: Box<[u8]>, form: Form) -> Str {
        match form {
            Form::Raw => Str::HeapRaw(bytes),
            Form::Auto | Form::Plain => Str::Heap(bytes),
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
    /// entry than its first bytes.
    pub fn set_i64(&mut self, n: i64) {
        match self {
            Str::Inline { len, form, data } => {
                *len = write_i64(data, n);
                *form = Form::Auto;
            }
            _ => *self = Str::from_i64(n),
        }
    }

    /// The string's bytes.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        match self {
            Str::Inline { len, data, .. } => &data[..usize::from(*len)],
            Str::Heap(bytes) | Str::HeapRaw(bytes) => bytes,
            Str::Shared(bytes) => bytes,
        }
    }

    /// How Redis would have encoded it, where that is not read off the
    /// bytes.
    pub fn form(&self) -> Form {
        match self {
            Str::Inline { form, .. } => *form,
            Str::Heap(_) => Form::Auto,
            Str::HeapRaw(_) | Str::Shared(_) => Form::Raw,
        }
    }

    /// The handle of a very long string, to send without copying.
    pub fn shared(&self) -> Option<&Bytes> {
        match self {
            Str::Shared(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// What the string allocates besides the entry, as requested of the
    /// allocator: its bytes, and for a kept handle the handle too (the
    /// bytes behind a handle may be a slice of a larger buffer).
    pub fn heap_sizes(&self) -> [usize; 2] {
        match self {
            Str::Inline { .. } => [0, 0],
            Str::Heap(bytes) | Str::HeapRaw(bytes) => [bytes.len(), 0],
            Str::Shared(bytes) => [bytes.len(), size_of::<Bytes>()],
        }
    }

    /// The bytes as a handle of their own.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Str::Shared(bytes) => Bytes::clone(bytes),
            _ => Bytes::copy_from_slice(self.bytes()),
        }
    }

    /// Changes the string in place (SETBIT, BITFIELD): grows it with zeros
    /// to at least `min_len` bytes, marks it [`Form::Raw`], and hands `f`
    /// its bytes. A short string is changed inside the entry, a longer one
    /// in its allocation (reallocated when it grows), and one in a kept
    /// handle copied once into an allocation of its own.
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
            Str::Heap(bytes) | Str::HeapRaw(bytes) if bytes.len() >= min_len => {
                let r = f(bytes);
                *self = Str::HeapRaw(std::mem::take(bytes));
                r
            }
            _ => {
                let mut buf = match std::mem::replace(self, Str::from_i64(0)) {
                    // Reallocated, where it lies if the allocator can.
                    Str::Heap(bytes) | Str::HeapRaw(bytes) => bytes.into_vec(),
                    other => other.bytes().to_vec(),
                };
                if buf.len() < min_len {
                    buf.reserve_exact(min_len - buf.len());
                    buf.resize(min_len, 0);
                }
                let r = f(&mut buf);
                *self = if buf.len() <= INLINE {
                    Str::from_slice(&buf, Form::Raw)
                } else {
                    Str::HeapRaw(buf.into_boxed_slice())
                };
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

    /// Short strings inside the entry cost no room, and a value of any
    /// type is 24 bytes (the slot's 64-byte class depends on it).
    #[test]
    fn values_stay_small() {
        assert_eq!(size_of::<Str>(), 24);
        assert_eq!(size_of::<Value>(), 24);
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
    fn strings_inline_boxed_or_shared() {
        let short = Str::from_slice(b"xxx", Form::Plain);
        assert!(short.shared().is_none());
        assert_eq!(short.heap_sizes(), [0, 0]);
        assert_eq!((short.bytes(), short.form()), (&b"xxx"[..], Form::Plain));
        let edge = Str::from_slice(&[b'z'; INLINE], Form::Auto);
        assert_eq!((edge.bytes().len(), edge.heap_sizes()), (INLINE, [0, 0]));
        // Past the inline room: copied into an allocation of its own.
        let long = Bytes::from(vec![b'y'; INLINE + 1]);
        for form in [Form::Auto, Form::Plain, Form::Raw] {
            let s = Str::new(long.clone(), form);
            assert!(s.shared().is_none());
            assert_eq!(s.heap_sizes(), [INLINE + 1, 0]);
            assert_eq!(s.to_bytes(), long);
            let want = if form == Form::Raw { "raw" } else { "embstr" };
            assert_eq!(s.encoding(), want);
        }
        // From KEEP_HANDLE bytes on, the handle itself.
        let big = Bytes::from(vec![b'w'; KEEP_HANDLE]);
        let s = Str::new(big.clone(), Form::Auto);
        assert_eq!(s.shared().map(|b| b.as_ptr()), Some(big.as_ptr()));
        assert_eq!((s.to_bytes().as_ptr(), s.encoding()), (big.as_ptr(), "raw"));
        let s = Str::new(big.slice(..KEEP_HANDLE - 1), Form::Auto);
        assert!(s.shared().is_none());
    }

    #[test]
    fn modified_in_place() {
        let mut s = Str::from_i64(12);
        s.modify(3, |b| b[2] = b'x');
        assert_eq!((s.bytes(), s.encoding()), (&b"12x"[..], "raw"));
        assert_eq!(s.heap_sizes(), [0, 0]);
        // Growing past the inline room moves it to an allocation.
        s.modify(INLINE + 2, |b| b[INLINE + 1] = 1);
        assert_eq!(s.bytes().len(), INLINE + 2);
        assert_eq!(&s.bytes()[..3], b"12x");
        assert_eq!(s.heap_sizes(), [INLINE + 2, 0]);
        // Changed where it lies when it does not grow.
        let at = s.bytes().as_ptr();
        s.modify(0, |b| b[0] = b'9');
        assert_eq!((s.bytes().as_ptr(), s.bytes()[0]), (at, b'9'));
        // A kept handle is copied, and the other holder keeps its bytes.
        let mut s = Str::new(Bytes::from(vec![b'9'; KEEP_HANDLE]), Form::Auto);
        let other = s.to_bytes();
        s.modify(0, |b| b[0] = b'8');
        assert_eq!((other[0], s.bytes()[0], s.encoding()), (b'9', b'8', "raw"));
        assert!(s.shared().is_none());
        // An embstr-length string changed in place reads as raw.
        let mut s = Str::from_slice(&[b'a'; 30], Form::Auto);
        assert_eq!(s.encoding(), "embstr");
        s.modify(0, |_| ());
        assert_eq!(s.encoding(), "raw");
    }
}

//! Values stored under keys.

use bytes::Bytes;

use crate::list::List;

/// A key's value. Hashes, sets and sorted sets arrive with their commands.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// A string.
    Str(Str),
    /// A list. Never empty: the last pop deletes the key. Boxed, so that
    /// strings, the common case, keep entries small.
    List(Box<List>),
}

impl Value {
    /// The name TYPE reports.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
        }
    }

    /// The encoding OBJECT ENCODING reports, with Redis's names and
    /// thresholds.
    pub(crate) fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => s.encoding(),
            // Redis 7.0 keeps every list in a quicklist (7.2 added listpack
            // for small ones).
            Value::List(_) => "quicklist",
        }
    }
}

/// Strings up to this long are stored inside the entry.
const INLINE: usize = 30;

/// A string value: up to [`INLINE`] bytes inside the entry itself (no
/// allocation of its own), longer ones as a `Bytes` handle. Either way 40
/// bytes, as a handle and its encoding note took before.
#[derive(Clone)]
pub(crate) enum Str {
    Inline {
        len: u8,
        form: Form,
        data: [u8; INLINE],
    },
    Shared {
        form: Form,
        bytes: Bytes,
    },
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
    pub(crate) fn new(bytes: Bytes, form: Form) -> Str {
        if bytes.len() <= INLINE {
            Str::from_slice(&bytes, form)
        } else {
            Str::Shared { form, bytes }
        }
    }

    /// A copy of `bytes`.
    pub(crate) fn from_slice(bytes: &[u8], form: Form) -> Str {
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

    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Str::Inline { len, data, .. } => &data[..usize::from(*len)],
            Str::Shared { bytes, .. } => bytes,
        }
    }

    /// How Redis would have encoded it, where that is not read off the
    /// bytes.
    pub(crate) fn form(&self) -> Form {
        match self {
            Str::Inline { form, .. } | Str::Shared { form, .. } => *form,
        }
    }

    /// The handle of a long string, to send without copying.
    pub(crate) fn shared(&self) -> Option<&Bytes> {
        match self {
            Str::Inline { .. } => None,
            Str::Shared { bytes, .. } => Some(bytes),
        }
    }

    /// The bytes as a handle of their own.
    pub(crate) fn to_bytes(&self) -> Bytes {
        match self {
            Str::Inline { .. } => Bytes::copy_from_slice(self.bytes()),
            Str::Shared { bytes, .. } => bytes.clone(),
        }
    }
}

/// What decides a string's reported encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
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
        } else if form == Form::Auto && bytes.len() <= 20 && resp::parse_int(bytes).is_some() {
            "int"
        } else if bytes.len() <= EMBSTR_LIMIT {
            "embstr"
        } else {
            "raw"
        }
    }
}

/// Arguments at least this long are stored as slices of the request that
/// carried them, like Redis's big-argument path; shorter ones are copied so
/// a stored value never pins a whole read buffer.
const SHARE_ABOVE: usize = 32 * 1024;

/// The string to store for argument `i` of a request: inside the entry if
/// short, a slice of the request if very long, a copy otherwise.
pub(crate) fn stored_str(req: &resp::Request, i: usize) -> Str {
    let arg = req.get(i).unwrap_or_default();
    if arg.len() <= INLINE {
        Str::from_slice(arg, Form::Auto)
    } else {
        Str::new(stored_arg(req, i), Form::Auto)
    }
}

/// The bytes to store for argument `i` of a request.
pub(crate) fn stored_arg(req: &resp::Request, i: usize) -> Bytes {
    stored(req.get(i).unwrap_or_default(), || {
        req.arg_bytes(i).unwrap_or_default()
    })
}

/// The bytes to store for an argument.
pub(crate) fn stored(arg: &[u8], shared: impl FnOnce() -> Bytes) -> Bytes {
    if arg.len() >= SHARE_ABOVE {
        shared()
    } else {
        Bytes::copy_from_slice(arg)
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
}

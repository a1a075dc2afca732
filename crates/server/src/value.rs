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
    pub(crate) fn from_bytes(bytes: Bytes) -> Value {
        Value::Str(Str {
            bytes,
            form: Form::Auto,
        })
    }

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

/// A string value.
#[derive(Debug, Clone)]
pub(crate) struct Str {
    pub(crate) bytes: Bytes,
    /// How Redis would have encoded it, where that is not read off the
    /// bytes.
    pub(crate) form: Form,
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
        if self.form == Form::Raw {
            "raw"
        } else if self.form == Form::Auto
            && self.bytes.len() <= 20
            && resp::parse_int(&self.bytes).is_some()
        {
            "int"
        } else if self.bytes.len() <= EMBSTR_LIMIT {
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

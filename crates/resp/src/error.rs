//! The one error type of the codec.

use bytes::{BufMut, Bytes, BytesMut};

/// Why bytes could not be decoded.
///
/// Decoding stops at the first error and leaves the buffer as it was. The
/// stream is then out of step: a server replies with
/// [`DecodeError::to_redis_error`] and closes the connection, as Redis does.
///
/// The `Display` text of the variants that Redis itself reports is Redis's
/// own wording (after its `Protocol error: ` prefix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A frame started with a byte that is not a RESP type marker.
    #[error("invalid frame type byte {0:#04x}")]
    InvalidType(u8),
    /// An aggregate header (`*`, `%`, `~`, `>`, `|`) carried a length that is
    /// not an integer, is negative, or exceeds the multibulk limit.
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    /// A bulk header (`$`, `!`, `=`) carried a length that is not an integer,
    /// is negative, or exceeds the bulk limit (`proto-max-bulk-len`).
    #[error("invalid bulk length")]
    InvalidBulkLength,
    /// An unauthenticated client sent a multibulk request with more
    /// arguments than allowed before authentication.
    #[error("unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// An unauthenticated client sent a bulk argument longer than allowed
    /// before authentication.
    #[error("unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    /// No CRLF ended a multibulk header within the inline limit.
    #[error("too big mbulk count string")]
    TooBigMultibulkCountString,
    /// No CRLF ended a bulk header within the inline limit.
    #[error("too big bulk count string")]
    TooBigBulkCountString,
    /// No newline ended an inline request within the inline limit.
    #[error("too big inline request")]
    TooBigInlineRequest,
    /// An inline request has an unterminated quote, or a closing quote that
    /// is not followed by a space.
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    /// An element of a multibulk request was not a bulk string.
    #[error("expected '$', got '{}'", char::from(*.0).escape_default())]
    ExpectedBulk(u8),
    /// No CRLF ended a simple line (simple string, error, integer, ...)
    /// within the line limit.
    #[error("too big line")]
    LineTooLong,
    /// A line held a CR not followed by LF, or a bare LF, or bulk data was
    /// not followed by CRLF.
    #[error("expected CRLF")]
    ExpectedCrlf,
    /// An integer frame (`:`) did not hold a 64-bit signed integer.
    #[error("invalid integer")]
    InvalidInteger,
    /// A double frame (`,`) did not hold a number, `inf`, `-inf` or `nan`.
    #[error("invalid double")]
    InvalidDouble,
    /// A boolean frame (`#`) held something other than `t` or `f`.
    #[error("invalid boolean")]
    InvalidBoolean,
    /// A big number frame (`(`) held something other than an optional sign
    /// and digits.
    #[error("invalid big number")]
    InvalidBigNumber,
    /// A null frame (`_`) had content before its CRLF.
    #[error("invalid null")]
    InvalidNull,
    /// A verbatim string did not start with a three-byte format and `:`.
    #[error("invalid verbatim string")]
    InvalidVerbatim,
    /// Aggregates were nested deeper than the depth limit.
    #[error("nesting deeper than {0} levels")]
    TooDeep(usize),
    /// A streamed string or aggregate (`$?`, `*?`, ...): RESP3 allows them,
    /// Redis never sends them, and this codec does not accept them.
    #[error("streamed frames are not supported")]
    Streamed,
}

impl DecodeError {
    /// The error reply Redis sends before closing a connection for this
    /// error, without the leading `-` and the trailing CRLF:
    /// `ERR Protocol error: invalid bulk length`.
    ///
    /// The bytes are Redis's: the offending byte of
    /// [`DecodeError::ExpectedBulk`] appears raw (a newline becomes a space,
    /// as Redis keeps error lines on one line).
    pub fn to_redis_error(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(64);
        out.put_slice(b"ERR Protocol error: ");
        match self {
            DecodeError::ExpectedBulk(b) => {
                let b = if matches!(b, b'\r' | b'\n') { b' ' } else { *b };
                out.put_slice(b"expected '$', got '");
                out.put_u8(b);
                out.put_u8(b'\'');
            }
            other => out.put_slice(other.to_string().as_bytes()),
        }
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_error_texts() {
        assert_eq!(
            &DecodeError::InvalidBulkLength.to_redis_error()[..],
            b"ERR Protocol error: invalid bulk length"
        );
        assert_eq!(
            &DecodeError::ExpectedBulk(b'x').to_redis_error()[..],
            b"ERR Protocol error: expected '$', got 'x'"
        );
        assert_eq!(
            &DecodeError::ExpectedBulk(0xff).to_redis_error()[..],
            b"ERR Protocol error: expected '$', got '\xff'"
        );
        assert_eq!(
            &DecodeError::ExpectedBulk(b'\n').to_redis_error()[..],
            b"ERR Protocol error: expected '$', got ' '"
        );
        assert_eq!(
            DecodeError::ExpectedBulk(b'\n').to_string(),
            "expected '$', got '\\n'"
        );
    }
}

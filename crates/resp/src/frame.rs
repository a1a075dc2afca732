//! The frame: one RESP2 or RESP3 value.

use bytes::Bytes;

/// One RESP value, as sent on the wire.
///
/// Every RESP2 and RESP3 type has its own variant, so a frame re-encodes to
/// the bytes it was decoded from (for integers, lengths and the other
/// canonical forms Redis writes). Byte payloads are [`Bytes`]: a decoded frame
/// shares the buffer it was read from instead of copying it.
///
/// Equality compares doubles as numbers, so a frame holding `NaN` is not
/// equal to itself.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Frame {
    /// `+OK\r\n`: a status line. It never holds CR or LF.
    Simple(Bytes),
    /// `-ERR message\r\n`: an error line, first word being the error code.
    Error(Bytes),
    /// `:42\r\n`: a signed 64-bit integer.
    Integer(i64),
    /// `$5\r\nhello\r\n`: a binary-safe string.
    Bulk(Bytes),
    /// `$-1\r\n`: RESP2's null bulk string.
    NullBulk,
    /// `*-1\r\n`: RESP2's null array.
    NullArray,
    /// `*2\r\n...`: an ordered list of frames.
    Array(Vec<Frame>),
    /// `_\r\n`: RESP3's null.
    Null,
    /// `#t\r\n` or `#f\r\n`: RESP3's boolean.
    Boolean(bool),
    /// `,3.14\r\n`: RESP3's double, including `inf`, `-inf` and `nan`.
    Double(f64),
    /// `(12345678901234567890\r\n`: RESP3's big number, kept as its decimal
    /// digits (with an optional sign).
    BigNumber(Bytes),
    /// `!21\r\nSYNTAX invalid syntax\r\n`: RESP3's binary-safe error.
    BulkError(Bytes),
    /// `=15\r\ntxt:Some string\r\n`: RESP3's verbatim string, with its
    /// three-byte format (`txt`, `mkd`) apart from the text.
    Verbatim {
        /// The format, such as `*b"txt"`.
        format: [u8; 3],
        /// The text after `format:`.
        text: Bytes,
    },
    /// `%1\r\n+key\r\n:1\r\n`: RESP3's map, as key-value pairs in wire order.
    Map(Vec<(Frame, Frame)>),
    /// `~2\r\n...`: RESP3's set, in wire order.
    Set(Vec<Frame>),
    /// `|1\r\n+key\r\n+value\r\n<frame>`: RESP3 attributes and the frame
    /// they describe.
    Attribute {
        /// The attribute map, as pairs in wire order.
        attrs: Vec<(Frame, Frame)>,
        /// The frame the attributes belong to.
        frame: Box<Frame>,
    },
    /// `>3\r\n...`: RESP3's out-of-band push (pub/sub messages,
    /// invalidations).
    Push(Vec<Frame>),
}

impl Frame {
    /// A bulk string frame holding `bytes`.
    pub fn bulk(bytes: impl Into<Bytes>) -> Frame {
        Frame::Bulk(bytes.into())
    }

    /// A simple string frame. The text must hold no CR or LF; the encoder
    /// replaces any with spaces.
    pub fn simple(text: impl Into<Bytes>) -> Frame {
        Frame::Simple(text.into())
    }

    /// An error frame, such as `Frame::error("ERR syntax error")`. The text
    /// must hold no CR or LF; the encoder replaces any with spaces.
    pub fn error(text: impl Into<Bytes>) -> Frame {
        Frame::Error(text.into())
    }

    /// A command: an array of bulk strings, as clients send requests.
    pub fn command<I, A>(args: I) -> Frame
    where
        I: IntoIterator<Item = A>,
        A: Into<Bytes>,
    {
        Frame::Array(args.into_iter().map(|a| Frame::Bulk(a.into())).collect())
    }

    /// Whether this frame is any of the null forms (`$-1`, `*-1`, `_`).
    pub fn is_null(&self) -> bool {
        matches!(self, Frame::Null | Frame::NullBulk | Frame::NullArray)
    }

    /// Whether this frame is an error reply (`-` or `!`).
    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_) | Frame::BulkError(_))
    }

    /// The bytes of a frame that carries a string: simple, error, bulk, big
    /// number, bulk error, or the text of a verbatim string.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Frame::Simple(b)
            | Frame::Error(b)
            | Frame::Bulk(b)
            | Frame::BigNumber(b)
            | Frame::BulkError(b)
            | Frame::Verbatim { text: b, .. } => Some(b),
            _ => None,
        }
    }

    /// The elements of an array, set or push frame.
    pub fn as_slice(&self) -> Option<&[Frame]> {
        match self {
            Frame::Array(v) | Frame::Set(v) | Frame::Push(v) => Some(v),
            _ => None,
        }
    }

    /// The RESP type marker this frame is written with (`b'$'` for a bulk
    /// string and for RESP2's null bulk, and so on).
    pub fn type_byte(&self) -> u8 {
        match self {
            Frame::Simple(_) => b'+',
            Frame::Error(_) => b'-',
            Frame::Integer(_) => b':',
            Frame::Bulk(_) | Frame::NullBulk => b'$',
            Frame::NullArray | Frame::Array(_) => b'*',
            Frame::Null => b'_',
            Frame::Boolean(_) => b'#',
            Frame::Double(_) => b',',
            Frame::BigNumber(_) => b'(',
            Frame::BulkError(_) => b'!',
            Frame::Verbatim { .. } => b'=',
            Frame::Map(_) => b'%',
            Frame::Set(_) => b'~',
            Frame::Attribute { .. } => b'|',
            Frame::Push(_) => b'>',
        }
    }
}

impl From<i64> for Frame {
    fn from(v: i64) -> Frame {
        Frame::Integer(v)
    }
}

impl From<bool> for Frame {
    fn from(v: bool) -> Frame {
        Frame::Boolean(v)
    }
}

impl From<f64> for Frame {
    fn from(v: f64) -> Frame {
        Frame::Double(v)
    }
}

impl From<Bytes> for Frame {
    fn from(v: Bytes) -> Frame {
        Frame::Bulk(v)
    }
}

impl From<&'static str> for Frame {
    fn from(v: &'static str) -> Frame {
        Frame::Bulk(Bytes::from_static(v.as_bytes()))
    }
}

impl From<Vec<Frame>> for Frame {
    fn from(v: Vec<Frame>) -> Frame {
        Frame::Array(v)
    }
}

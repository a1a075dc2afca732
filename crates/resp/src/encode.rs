//! Encoding frames, and writing replies and commands without building frames.
//!
//! Everything here appends to a [`BytesMut`] synchronously and cannot fail.
//! The free functions are the building blocks a server uses to write a reply
//! straight into its output buffer, and [`encode_command`] is a client's hot
//! path: a request from argument slices, with no [`Frame`] in between.

use bytes::{BufMut, BytesMut};

use crate::Frame;

/// Which protocol a frame is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// RESP2, what a connection speaks until `HELLO 3`.
    Resp2,
    /// RESP3.
    Resp3,
}

impl Frame {
    /// Appends this frame to `dst` exactly as its variant says.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use ember_resp::Frame;
    ///
    /// let mut out = BytesMut::new();
    /// Frame::Array(vec![Frame::bulk("GET"), Frame::bulk("k")]).encode(&mut out);
    /// assert_eq!(&out[..], b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    /// ```
    pub fn encode(&self, dst: &mut BytesMut) {
        self.encode_as(Protocol::Resp3, dst);
    }

    /// Appends this frame to `dst` for a client of protocol `proto`.
    ///
    /// For [`Protocol::Resp2`], RESP3-only types are written the way Redis
    /// writes them to a RESP2 client: null as `$-1`, booleans as `:1`/`:0`,
    /// doubles, big numbers and verbatim text as bulk strings, bulk errors as
    /// error lines, maps flattened into arrays of keys and values, sets and
    /// pushes as arrays, and attributes dropped.
    pub fn encode_as(&self, proto: Protocol, dst: &mut BytesMut) {
        let resp2 = proto == Protocol::Resp2;
        match self {
            Frame::Simple(s) => write_simple(dst, s),
            Frame::Error(e) => write_error(dst, e),
            Frame::Integer(i) => write_integer(dst, *i),
            Frame::Bulk(b) => write_bulk(dst, b),
            Frame::NullBulk => dst.put_slice(b"$-1\r\n"),
            Frame::NullArray => dst.put_slice(b"*-1\r\n"),
            Frame::Array(items) => {
                write_header(dst, b'*', items.len());
                items.iter().for_each(|f| f.encode_as(proto, dst));
            }
            Frame::Null if resp2 => dst.put_slice(b"$-1\r\n"),
            Frame::Null => dst.put_slice(b"_\r\n"),
            Frame::Boolean(b) if resp2 => write_integer(dst, i64::from(*b)),
            Frame::Boolean(b) => dst.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Frame::Double(d) => {
                let text = format_double(*d);
                if resp2 {
                    write_bulk(dst, text.as_bytes());
                } else {
                    write_line(dst, b',', text.as_bytes());
                }
            }
            Frame::BigNumber(n) if resp2 => write_bulk(dst, n),
            Frame::BigNumber(n) => write_line(dst, b'(', n),
            Frame::BulkError(e) if resp2 => write_error(dst, e),
            Frame::BulkError(e) => write_blob(dst, b'!', e),
            Frame::Verbatim { text, .. } if resp2 => write_bulk(dst, text),
            Frame::Verbatim { format, text } => {
                write_header(dst, b'=', text.len() + 4);
                dst.reserve(text.len() + 6);
                dst.put_slice(format);
                dst.put_u8(b':');
                dst.put_slice(text);
                dst.put_slice(b"\r\n");
            }
            Frame::Map(pairs) => {
                if resp2 {
                    write_header(dst, b'*', pairs.len() * 2);
                } else {
                    write_header(dst, b'%', pairs.len());
                }
                for (k, v) in pairs {
                    k.encode_as(proto, dst);
                    v.encode_as(proto, dst);
                }
            }
            Frame::Set(items) | Frame::Push(items) => {
                let marker = if resp2 { b'*' } else { self.type_byte() };
                write_header(dst, marker, items.len());
                items.iter().for_each(|f| f.encode_as(proto, dst));
            }
            Frame::Attribute { frame, .. } if resp2 => frame.encode_as(proto, dst),
            Frame::Attribute { attrs, frame } => {
                write_header(dst, b'|', attrs.len());
                for (k, v) in attrs {
                    k.encode_as(proto, dst);
                    v.encode_as(proto, dst);
                }
                frame.encode_as(proto, dst);
            }
        }
    }
}

/// Appends a command, an array of bulk strings, built straight from `args`.
///
/// ```
/// let mut out = bytes::BytesMut::new();
/// ember_resp::encode_command(&mut out, &[&b"SET"[..], b"key", b"value"]);
/// assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n");
/// ```
pub fn encode_command<A: AsRef<[u8]>>(dst: &mut BytesMut, args: &[A]) {
    // One reservation for the whole command: headers are at most 22 bytes.
    let size: usize = args.iter().map(|a| a.as_ref().len() + 24).sum();
    dst.reserve(size + 24);
    write_header(dst, b'*', args.len());
    for arg in args {
        write_bulk(dst, arg.as_ref());
    }
}

/// Appends `+text\r\n`. CR and LF in `text` become spaces, so the output is
/// always one line.
pub fn write_simple(dst: &mut BytesMut, text: &[u8]) {
    write_sanitized_line(dst, b'+', text);
}

/// Appends `-text\r\n` (`text` such as `ERR syntax error`). CR and LF in
/// `text` become spaces, as Redis does for error replies.
pub fn write_error(dst: &mut BytesMut, text: &[u8]) {
    write_sanitized_line(dst, b'-', text);
}

/// Appends `:value\r\n`.
pub fn write_integer(dst: &mut BytesMut, value: i64) {
    let mut buf = IntBuf::new();
    write_line(dst, b':', buf.format(value));
}

/// Appends `$len\r\nbytes\r\n`.
pub fn write_bulk(dst: &mut BytesMut, bytes: &[u8]) {
    write_blob(dst, b'$', bytes);
}

/// Appends the header of an aggregate or blob: `marker`, `len`, CRLF (for
/// example `*3\r\n` before three elements).
pub fn write_header(dst: &mut BytesMut, marker: u8, len: usize) {
    let mut buf = IntBuf::new();
    // usize always fits in i64 on the platforms Rust supports as hosts here;
    // saturate rather than wrap if it ever did not.
    write_line(
        dst,
        marker,
        buf.format(i64::try_from(len).unwrap_or(i64::MAX)),
    );
}

fn write_blob(dst: &mut BytesMut, marker: u8, bytes: &[u8]) {
    write_header(dst, marker, bytes.len());
    dst.reserve(bytes.len() + 2);
    dst.put_slice(bytes);
    dst.put_slice(b"\r\n");
}

fn write_line(dst: &mut BytesMut, marker: u8, body: &[u8]) {
    dst.reserve(body.len() + 3);
    dst.put_u8(marker);
    dst.put_slice(body);
    dst.put_slice(b"\r\n");
}

fn write_sanitized_line(dst: &mut BytesMut, marker: u8, body: &[u8]) {
    if memchr::memchr2(b'\r', b'\n', body).is_none() {
        return write_line(dst, marker, body);
    }
    dst.reserve(body.len() + 3);
    dst.put_u8(marker);
    dst.extend(
        body.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    dst.put_slice(b"\r\n");
}

/// The shortest text that reads back as the same double, in RESP3's
/// spelling of the special values.
fn format_double(d: f64) -> String {
    if d.is_nan() {
        "nan".to_owned()
    } else if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        // `{:?}` is Rust's shortest round-trip form, with an exponent for very
        // large and very small magnitudes ("1e300", "1e-7", "0.1").
        format!("{d:?}")
    }
}

/// A stack buffer for formatting an `i64` without allocating.
struct IntBuf([u8; 20]);

impl IntBuf {
    fn new() -> Self {
        IntBuf([0; 20])
    }

    fn format(&mut self, value: i64) -> &[u8] {
        let mut n = value.unsigned_abs();
        let mut i = self.0.len();
        loop {
            i -= 1;
            self.0[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if value < 0 {
            i -= 1;
            self.0[i] = b'-';
        }
        &self.0[i..]
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn enc(f: &Frame, proto: Protocol) -> Vec<u8> {
        let mut out = BytesMut::new();
        f.encode_as(proto, &mut out);
        out.to_vec()
    }

    #[test]
    fn integers() {
        for v in [0, 1, -1, 42, i64::MAX, i64::MIN, 1_000_000] {
            let mut out = BytesMut::new();
            write_integer(&mut out, v);
            assert_eq!(out, format!(":{v}\r\n").as_bytes());
        }
    }

    #[test]
    fn resp2_downgrades_like_redis() {
        use Protocol::Resp2;
        assert_eq!(enc(&Frame::Null, Resp2), b"$-1\r\n");
        assert_eq!(enc(&Frame::Boolean(true), Resp2), b":1\r\n");
        assert_eq!(enc(&Frame::Double(1.5), Resp2), b"$3\r\n1.5\r\n");
        assert_eq!(enc(&Frame::Double(f64::INFINITY), Resp2), b"$3\r\ninf\r\n");
        let map = Frame::Map(vec![(Frame::bulk("a"), Frame::Integer(1))]);
        assert_eq!(enc(&map, Resp2), b"*2\r\n$1\r\na\r\n:1\r\n");
        let verbatim = Frame::Verbatim {
            format: *b"txt",
            text: Bytes::from_static(b"hi"),
        };
        assert_eq!(enc(&verbatim, Resp2), b"$2\r\nhi\r\n");
        assert_eq!(enc(&verbatim, Protocol::Resp3), b"=6\r\ntxt:hi\r\n");
        let attr = Frame::Attribute {
            attrs: vec![(Frame::simple("ttl"), Frame::Integer(3))],
            frame: Box::new(Frame::Integer(7)),
        };
        assert_eq!(enc(&attr, Resp2), b":7\r\n");
        assert_eq!(enc(&attr, Protocol::Resp3), b"|1\r\n+ttl\r\n:3\r\n:7\r\n");
        let push = Frame::Push(vec![Frame::bulk("message")]);
        assert_eq!(enc(&push, Resp2), b"*1\r\n$7\r\nmessage\r\n");
        assert_eq!(
            enc(&Frame::BulkError(Bytes::from_static(b"ERR x")), Resp2),
            b"-ERR x\r\n"
        );
    }

    #[test]
    fn error_lines_stay_one_line() {
        let mut out = BytesMut::new();
        write_error(&mut out, b"ERR bad\r\nthing");
        assert_eq!(&out[..], b"-ERR bad  thing\r\n");
    }

    #[test]
    fn doubles() {
        let cases = [
            (1.5, "1.5"),
            (-0.25, "-0.25"),
            (1.0, "1.0"),
            (1e300, "1e300"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ];
        for (d, text) in cases {
            assert_eq!(format_double(d), text);
        }
    }
}

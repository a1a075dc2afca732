//! Decoding frames: a resumable scanner and a zero-copy builder.
//!
//! Decoding happens in two steps. The scanner walks the buffer from where it
//! stopped last time, validating each element and recording it as a [`Head`]
//! (ranges into the buffer, never copies) in a flat pre-order list. Only when
//! the whole frame is present does the decoder split it off the buffer,
//! freeze it, and turn the list into a [`Frame`] whose strings are slices of
//! that one frozen buffer.
//!
//! Because the scanner keeps its place, a frame that arrives in many reads
//! costs what it would cost in one: a bulk string waiting for its payload is
//! an O(1) length check per read, and the elements of a large array are
//! scanned once each, not once per read.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use crate::parse::{
    is_big_number, parse_bool, parse_double, parse_int, quick_len, verbatim_format,
};
use crate::{DecodeError, Frame, Limits, RawFrame};

/// Items kept between frames; a bigger list is shrunk back after use so one
/// huge frame does not pin its scratch memory for the life of a connection.
const KEEP_ITEMS: usize = 4096;

/// A resumable decoder of RESP2 and RESP3 frames.
///
/// Feed it the same buffer again after each `Ok(None)`, with more bytes
/// appended; it remembers how far it got. Between such calls the caller must
/// not remove or change bytes already in the buffer (appending is fine).
/// After `Ok(Some(_))` the frame's bytes have been split off the front of the
/// buffer, and the next call starts on the next frame.
///
/// ```
/// use bytes::BytesMut;
/// use ember_resp::{Decoder, Frame};
///
/// let mut decoder = Decoder::new();
/// let mut buf = BytesMut::from(&b"*2\r\n$3\r\nfoo\r\n"[..]);
/// assert_eq!(decoder.decode(&mut buf), Ok(None)); // waiting for element 2
/// buf.extend_from_slice(b":42\r\n+OK\r\n");
/// let frame = decoder.decode(&mut buf).unwrap().unwrap();
/// assert_eq!(frame, Frame::Array(vec![Frame::bulk("foo"), Frame::Integer(42)]));
/// assert_eq!(&buf[..], b"+OK\r\n"); // the next frame is left in place
/// ```
#[derive(Debug, Default)]
pub struct Decoder {
    limits: Limits,
    scan: Scan,
}

impl Decoder {
    /// A decoder with Redis's default [`Limits`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder enforcing `limits`.
    pub fn with_limits(limits: Limits) -> Self {
        Decoder {
            limits,
            scan: Scan::default(),
        }
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Changes the limits. Takes effect from the next element scanned.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Decodes the frame at the front of `buf`.
    ///
    /// Returns `Ok(Some(frame))` and removes the frame's bytes from `buf`;
    /// `Ok(None)` when more bytes are needed, with `buf` untouched; or an
    /// error, with `buf` untouched and the decoder reset.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        self.next(buf, |bytes, scan| {
            let mut slicer = Slicer {
                bytes,
                left: scan.strings,
            };
            build(&mut scan.items.iter(), &mut slicer)
        })
    }

    /// Decodes the frame at the front of `buf` into a [`RawFrame`]: the
    /// frame's own bytes plus an index of its elements.
    ///
    /// Same contract as [`Decoder::decode`]. Use it where a frame is read
    /// in place or forwarded as is: nothing is sliced or counted per
    /// element, and [`RawFrame::as_bytes`] gives the exact wire bytes.
    pub fn decode_raw(&mut self, buf: &mut BytesMut) -> Result<Option<RawFrame>, DecodeError> {
        self.next(buf, |bytes, scan| RawFrame::new(bytes, &mut scan.items))
    }

    /// Scans on; once a frame is complete, splits its bytes off `buf` and
    /// hands them with the scan to `finish`.
    fn next<T>(
        &mut self,
        buf: &mut BytesMut,
        finish: impl FnOnce(Bytes, &mut Scan) -> T,
    ) -> Result<Option<T>, DecodeError> {
        if buf.len() < self.scan.pos {
            // The caller consumed bytes we had scanned: start the frame over.
            self.scan.reset();
        }
        let result = match self.scan.run(buf, &self.limits) {
            Ok(Some(len)) => Ok(Some(finish(buf.split_to(len).freeze(), &mut self.scan))),
            Ok(None) => return Ok(None),
            Err(e) => Err(e),
        };
        self.scan.reset();
        result
    }

    /// Forgets any partly scanned frame, as after a reconnect.
    pub fn reset(&mut self) {
        self.scan.reset();
    }
}

/// Decodes one frame from the front of `buf` with default [`Limits`].
///
/// A convenience for one-off use: it scans from the start of `buf` each
/// time. Code that reads a stream should keep a [`Decoder`], which resumes
/// where it stopped.
pub fn decode(buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
    Decoder::new().decode(buf)
}

/// One scanned element: a scalar with the ranges of its bytes, or the header
/// of an aggregate whose children follow it in the list.
#[derive(Debug, Clone)]
pub(crate) enum Head {
    Simple(Range<usize>),
    Error(Range<usize>),
    Integer(i64),
    Bulk(Range<usize>),
    NullBulk,
    NullArray,
    Null,
    Boolean(bool),
    Double(f64),
    BigNumber(Range<usize>),
    BulkError(Range<usize>),
    Verbatim([u8; 3], Range<usize>),
    /// An aggregate: its type marker, its length (pairs for maps and
    /// attributes), and the index in the list just past its last
    /// descendant, so a reader can step over it.
    Aggregate {
        marker: u8,
        len: usize,
        end: usize,
    },
}

impl Head {
    fn has_bytes(&self) -> bool {
        matches!(
            self,
            Head::Simple(_)
                | Head::Error(_)
                | Head::Bulk(_)
                | Head::BigNumber(_)
                | Head::BulkError(_)
                | Head::Verbatim(..)
        )
    }
}

/// An aggregate being scanned.
#[derive(Debug)]
struct Open {
    /// Children still expected.
    left: u64,
    /// Its index in the item list.
    item: usize,
}

#[derive(Debug, Default)]
struct Scan {
    /// Bytes of the current frame scanned so far: the next element starts here.
    pos: usize,
    /// How many bytes after the next element's type byte were already
    /// searched for its line end, so a long line arriving slowly is searched
    /// once.
    searched: usize,
    /// The aggregates still open, innermost last.
    stack: Vec<Open>,
    /// The elements scanned so far, in pre-order.
    items: Vec<Head>,
    /// How many of them carry bytes (strings of any kind).
    strings: usize,
}

impl Scan {
    fn reset(&mut self) {
        self.pos = 0;
        self.searched = 0;
        self.stack.clear();
        self.items.clear();
        self.strings = 0;
        if self.items.capacity() > KEEP_ITEMS {
            self.items.shrink_to(KEEP_ITEMS);
        }
    }

    /// Scans on from `self.pos`. Returns the frame's total length once it is
    /// complete, `None` if more bytes are needed.
    fn run(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<usize>, DecodeError> {
        loop {
            let Some((head, next)) = scan_head(buf, self.pos, &mut self.searched, limits)? else {
                // The one place where "incomplete" is decided: everything up
                // to `pos` stays scanned, and the next call resumes there.
                return Ok(None);
            };
            self.pos = next;
            self.searched = 0;
            let item = self.items.len();
            if let Head::Aggregate { marker, len, .. } = head {
                let left = match marker {
                    b'%' => 2 * len as u64,
                    b'|' => 2 * len as u64 + 1,
                    _ => len as u64,
                };
                if left > 0 {
                    if self.stack.len() >= limits.depth() {
                        return Err(DecodeError::TooDeep(limits.depth()));
                    }
                    self.items.push(head);
                    self.stack.push(Open { left, item });
                    continue;
                }
                self.items.push(Head::Aggregate {
                    marker,
                    len,
                    end: item + 1,
                });
            } else {
                self.strings += usize::from(head.has_bytes());
                self.items.push(head);
            }
            // An element is complete: close every aggregate it completes.
            loop {
                match self.stack.last_mut() {
                    None => return Ok(Some(self.pos)),
                    Some(open) => {
                        open.left -= 1;
                        if open.left > 0 {
                            break;
                        }
                        let end = self.items.len();
                        if let Some(Head::Aggregate { end: e, .. }) = self.items.get_mut(open.item)
                        {
                            *e = end;
                        }
                        self.stack.pop();
                    }
                }
            }
        }
    }
}

/// Scans the element starting at `pos`: its header line and, for blobs, its
/// payload. Returns the element and where the next one starts.
fn scan_head(
    buf: &[u8],
    pos: usize,
    searched: &mut usize,
    limits: &Limits,
) -> Result<Option<(Head, usize)>, DecodeError> {
    let Some(&marker) = buf.get(pos) else {
        return Ok(None);
    };
    let (too_long, is_len) = match marker {
        b'*' | b'%' | b'~' | b'>' | b'|' => (DecodeError::TooBigMultibulkCountString, true),
        b'$' | b'!' | b'=' => (DecodeError::TooBigBulkCountString, true),
        b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => (DecodeError::LineTooLong, false),
        other => return Err(DecodeError::InvalidType(other)),
    };
    let quick = if is_len {
        quick_len(buf, pos + 1)
    } else {
        None
    };
    let cr = match quick {
        Some((_, cr)) => match buf.get(cr + 1) {
            Some(b'\n') => cr,
            Some(_) => return Err(DecodeError::ExpectedCrlf),
            None => return Ok(None),
        },
        None => match find_line_end(buf, pos, searched, limits.max_inline_len, too_long)? {
            Some(cr) => cr,
            None => return Ok(None),
        },
    };
    let body = pos + 1..cr;
    let line = &buf[body.clone()];
    let next = cr + 2;
    let head = match marker {
        b'+' => Head::Simple(body),
        b'-' => Head::Error(body),
        b':' => Head::Integer(parse_int(line).ok_or(DecodeError::InvalidInteger)?),
        b'_' if line.is_empty() => Head::Null,
        b'_' => return Err(DecodeError::InvalidNull),
        b'#' => Head::Boolean(parse_bool(line).ok_or(DecodeError::InvalidBoolean)?),
        b',' => Head::Double(parse_double(line).ok_or(DecodeError::InvalidDouble)?),
        b'(' if is_big_number(line) => Head::BigNumber(body),
        b'(' => return Err(DecodeError::InvalidBigNumber),
        b'$' | b'!' | b'=' => {
            if line == b"?" {
                return Err(DecodeError::Streamed);
            }
            let len = match quick {
                Some((len, _)) => len,
                None => parse_int(line).ok_or(DecodeError::InvalidBulkLength)?,
            };
            if len == -1 && marker == b'$' {
                return Ok(Some((Head::NullBulk, next)));
            }
            let len = u64::try_from(len)
                .ok()
                .filter(|&len| len <= limits.max_bulk_len)
                .and_then(|len| usize::try_from(len).ok())
                .ok_or(DecodeError::InvalidBulkLength)?;
            let end = next + len;
            if buf.len() < end + 2 {
                // The payload is not all here. Remember that the header line
                // is complete so the next call finds its end at once.
                *searched = cr - pos - 1;
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(DecodeError::ExpectedCrlf);
            }
            let data = next..end;
            let head = match marker {
                b'$' => Head::Bulk(data),
                b'!' => Head::BulkError(data),
                _ => {
                    let format =
                        verbatim_format(&buf[data.clone()]).ok_or(DecodeError::InvalidVerbatim)?;
                    Head::Verbatim(format, data.start + 4..data.end)
                }
            };
            return Ok(Some((head, end + 2)));
        }
        _ => {
            if line == b"?" {
                return Err(DecodeError::Streamed);
            }
            let len = match quick {
                Some((len, _)) => len,
                None => parse_int(line).ok_or(DecodeError::InvalidMultibulkLength)?,
            };
            if len == -1 && marker == b'*' {
                Head::NullArray
            } else {
                let len = u64::try_from(len)
                    .ok()
                    .filter(|&len| len <= limits.max_multibulk_len)
                    .and_then(|len| usize::try_from(len).ok())
                    .ok_or(DecodeError::InvalidMultibulkLength)?;
                Head::Aggregate {
                    marker,
                    len,
                    end: 0,
                }
            }
        }
    };
    Ok(Some((head, next)))
}

/// Finds the CR of the CRLF that ends the line whose type byte is at `pos`.
///
/// `searched` carries how much of the line was already searched in earlier
/// calls; it is reset once the line end is found. A line longer than `max`
/// gives `too_long`, whether or not its end has arrived.
pub(crate) fn find_line_end(
    buf: &[u8],
    pos: usize,
    searched: &mut usize,
    max: usize,
    too_long: DecodeError,
) -> Result<Option<usize>, DecodeError> {
    let from = pos + 1 + *searched;
    // A line holds neither CR nor LF: stop at the first of either.
    match memchr::memchr2(b'\r', b'\n', buf.get(from..).unwrap_or_default()) {
        Some(offset) => {
            let cr = from + offset;
            if cr - pos - 1 > max {
                return Err(too_long);
            }
            if buf[cr] == b'\n' {
                return Err(DecodeError::ExpectedCrlf);
            }
            match buf.get(cr + 1) {
                None => {
                    *searched = cr - pos - 1;
                    Ok(None)
                }
                Some(b'\n') => {
                    *searched = 0;
                    Ok(Some(cr))
                }
                Some(_) => Err(DecodeError::ExpectedCrlf),
            }
        }
        None => {
            let line = buf.len().saturating_sub(pos + 1);
            if line > max {
                return Err(too_long);
            }
            *searched = line;
            Ok(None)
        }
    }
}

/// Hands out the strings of one frame as slices of its bytes.
///
/// Each slice costs a reference-count increment (and a decrement when
/// dropped); the last string takes the frame's own handle instead, which
/// saves one round trip per frame, a fair share of the cost of small frames.
#[derive(Debug)]
pub(crate) struct Slicer {
    pub(crate) bytes: Bytes,
    /// Strings still to hand out; the handle itself goes with the last.
    pub(crate) left: usize,
}

impl Slicer {
    fn take(&mut self, range: &Range<usize>) -> Bytes {
        self.left = self.left.saturating_sub(1);
        if self.left > 0 {
            return self.bytes.slice(range.clone());
        }
        let mut last = std::mem::take(&mut self.bytes);
        last.truncate(range.end);
        last.advance(range.start);
        last
    }
}

/// Turns scanned elements into a frame whose strings are slices of `bytes`.
pub(crate) fn build(items: &mut std::slice::Iter<'_, Head>, bytes: &mut Slicer) -> Frame {
    let Some(head) = items.next() else {
        // The scanner records every child of every aggregate before it
        // reports a frame complete, so the list never runs out early.
        return Frame::Null;
    };
    match head {
        Head::Simple(r) => Frame::Simple(bytes.take(r)),
        Head::Error(r) => Frame::Error(bytes.take(r)),
        Head::Integer(i) => Frame::Integer(*i),
        Head::Bulk(r) => Frame::Bulk(bytes.take(r)),
        Head::NullBulk => Frame::NullBulk,
        Head::NullArray => Frame::NullArray,
        Head::Null => Frame::Null,
        Head::Boolean(b) => Frame::Boolean(*b),
        Head::Double(d) => Frame::Double(*d),
        Head::BigNumber(r) => Frame::BigNumber(bytes.take(r)),
        Head::BulkError(r) => Frame::BulkError(bytes.take(r)),
        Head::Verbatim(format, r) => Frame::Verbatim {
            format: *format,
            text: bytes.take(r),
        },
        Head::Aggregate { marker, len, .. } => {
            let len = *len;
            match marker {
                b'%' => Frame::Map(build_pairs(items, bytes, len)),
                b'|' => {
                    let attrs = build_pairs(items, bytes, len);
                    let frame = Box::new(build(items, bytes));
                    Frame::Attribute { attrs, frame }
                }
                _ => {
                    // `len` children were scanned, so this allocation is
                    // backed by bytes that really arrived.
                    let mut v = Vec::with_capacity(len);
                    for _ in 0..len {
                        v.push(build(items, bytes));
                    }
                    match marker {
                        b'~' => Frame::Set(v),
                        b'>' => Frame::Push(v),
                        _ => Frame::Array(v),
                    }
                }
            }
        }
    }
}

fn build_pairs(
    items: &mut std::slice::Iter<'_, Head>,
    bytes: &mut Slicer,
    len: usize,
) -> Vec<(Frame, Frame)> {
    let mut pairs = Vec::with_capacity(len);
    for _ in 0..len {
        let k = build(items, bytes);
        let v = build(items, bytes);
        pairs.push((k, v));
    }
    pairs
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, Bytes, BytesMut};
    use proptest::prelude::*;

    use super::*;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    /// Checks one valid input: decoded whole, with trailing bytes, fed one
    /// byte at a time, and that every strict prefix asks for more.
    #[track_caller]
    fn ok(input: &[u8], want: Frame) {
        let mut buf = BytesMut::from(input);
        assert_eq!(decode(&mut buf), Ok(Some(want.clone())), "{input:?}");
        assert!(buf.is_empty(), "{input:?} left {buf:?}");

        let mut buf = BytesMut::from(input);
        buf.put_slice(b"+PAD\r\n");
        assert_eq!(
            decode(&mut buf),
            Ok(Some(want.clone())),
            "{input:?} + padding"
        );
        assert_eq!(&buf[..], b"+PAD\r\n", "{input:?} consumed the wrong length");

        for end in 0..input.len() {
            let mut buf = BytesMut::from(&input[..end]);
            assert_eq!(decode(&mut buf), Ok(None), "prefix {:?}", &input[..end]);
            assert_eq!(&buf[..], &input[..end], "prefix was modified");
        }

        let mut decoder = Decoder::new();
        let mut buf = BytesMut::new();
        for (i, &byte) in input.iter().enumerate() {
            buf.put_u8(byte);
            let got = decoder.decode(&mut buf).unwrap();
            if i + 1 < input.len() {
                assert_eq!(got, None, "byte-by-byte {input:?} at {i}");
            } else {
                assert_eq!(got, Some(want.clone()), "byte-by-byte {input:?}");
            }
        }
    }

    #[track_caller]
    fn err(input: &[u8], want: DecodeError) {
        err_with(Limits::default(), input, want);
    }

    #[track_caller]
    fn err_with(limits: Limits, input: &[u8], want: DecodeError) {
        let mut buf = BytesMut::from(input);
        let mut decoder = Decoder::with_limits(limits);
        assert_eq!(decoder.decode(&mut buf), Err(want.clone()), "{input:?}");
        assert_eq!(&buf[..], input, "an error must leave the buffer as it was");
        // Fed byte by byte, the same error comes, never a frame.
        let mut decoder = Decoder::with_limits(limits);
        let mut buf = BytesMut::new();
        for &byte in input {
            buf.put_u8(byte);
            match decoder.decode(&mut buf) {
                Ok(None) => continue,
                Ok(Some(f)) => panic!("{input:?} decoded as {f:?}"),
                Err(e) => {
                    assert_eq!(e, want, "byte-by-byte {input:?}");
                    return;
                }
            }
        }
        panic!("{input:?} byte by byte gave no error");
    }

    #[test]
    fn resp2_types() {
        ok(b"+OK\r\n", Frame::Simple(b("OK")));
        ok(b"+\r\n", Frame::Simple(b("")));
        ok(
            b"-ERR unknown command\r\n",
            Frame::Error(b("ERR unknown command")),
        );
        ok(b":0\r\n", Frame::Integer(0));
        ok(b":-42\r\n", Frame::Integer(-42));
        ok(b":9223372036854775807\r\n", Frame::Integer(i64::MAX));
        ok(b":-9223372036854775808\r\n", Frame::Integer(i64::MIN));
        ok(b"$5\r\nhello\r\n", Frame::Bulk(b("hello")));
        ok(b"$0\r\n\r\n", Frame::Bulk(b("")));
        ok(b"$4\r\na\r\nb\r\n", Frame::Bulk(b("a\r\nb")));
        ok(b"$-1\r\n", Frame::NullBulk);
        ok(b"*-1\r\n", Frame::NullArray);
        ok(b"*0\r\n", Frame::Array(vec![]));
        ok(
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
            Frame::command(["SET", "k", "v"]),
        );
        ok(
            b"*2\r\n*1\r\n:1\r\n*0\r\n",
            Frame::Array(vec![
                Frame::Array(vec![Frame::Integer(1)]),
                Frame::Array(vec![]),
            ]),
        );
        ok(
            b"*3\r\n$-1\r\n*-1\r\n+x\r\n",
            Frame::Array(vec![
                Frame::NullBulk,
                Frame::NullArray,
                Frame::Simple(b("x")),
            ]),
        );
    }

    #[test]
    fn resp3_types() {
        ok(b"_\r\n", Frame::Null);
        ok(b"#t\r\n", Frame::Boolean(true));
        ok(b"#f\r\n", Frame::Boolean(false));
        ok(b",1.5\r\n", Frame::Double(1.5));
        ok(b",-2\r\n", Frame::Double(-2.0));
        ok(b",1e10\r\n", Frame::Double(1e10));
        ok(b",inf\r\n", Frame::Double(f64::INFINITY));
        ok(b",-inf\r\n", Frame::Double(f64::NEG_INFINITY));
        ok(
            b"(3492890328409238509324850943850943825024385\r\n",
            Frame::BigNumber(b("3492890328409238509324850943850943825024385")),
        );
        ok(
            b"!21\r\nSYNTAX invalid syntax\r\n",
            Frame::BulkError(b("SYNTAX invalid syntax")),
        );
        ok(
            b"=15\r\ntxt:Some string\r\n",
            Frame::Verbatim {
                format: *b"txt",
                text: b("Some string"),
            },
        );
        ok(
            b"%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n",
            Frame::Map(vec![
                (Frame::Simple(b("first")), Frame::Integer(1)),
                (Frame::Simple(b("second")), Frame::Integer(2)),
            ]),
        );
        ok(b"%0\r\n", Frame::Map(vec![]));
        ok(
            b"~2\r\n+a\r\n#f\r\n",
            Frame::Set(vec![Frame::Simple(b("a")), Frame::Boolean(false)]),
        );
        ok(
            b">2\r\n+message\r\n$2\r\nhi\r\n",
            Frame::Push(vec![Frame::Simple(b("message")), Frame::Bulk(b("hi"))]),
        );
        ok(
            b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*1\r\n:2039123\r\n",
            Frame::Attribute {
                attrs: vec![(
                    Frame::Simple(b("key-popularity")),
                    Frame::Map(vec![(Frame::Bulk(b("a")), Frame::Double(0.19))]),
                )],
                frame: Box::new(Frame::Array(vec![Frame::Integer(2039123)])),
            },
        );
        // An attribute inside an aggregate counts as one element with the
        // frame it describes.
        ok(
            b"*2\r\n|1\r\n+ttl\r\n:5\r\n+v\r\n:1\r\n",
            Frame::Array(vec![
                Frame::Attribute {
                    attrs: vec![(Frame::Simple(b("ttl")), Frame::Integer(5))],
                    frame: Box::new(Frame::Simple(b("v"))),
                },
                Frame::Integer(1),
            ]),
        );
        let mut buf = BytesMut::from(&b",nan\r\n"[..]);
        assert!(matches!(decode(&mut buf), Ok(Some(Frame::Double(d))) if d.is_nan()));
    }

    #[test]
    fn errors() {
        err(b"x\r\n", DecodeError::InvalidType(b'x'));
        err(b"\r\n", DecodeError::InvalidType(b'\r'));
        err(b":12a\r\n", DecodeError::InvalidInteger);
        err(b":\r\n", DecodeError::InvalidInteger);
        err(b":01\r\n", DecodeError::InvalidInteger);
        err(b":9223372036854775808\r\n", DecodeError::InvalidInteger);
        err(b"$abc\r\n", DecodeError::InvalidBulkLength);
        err(b"$-2\r\n", DecodeError::InvalidBulkLength);
        err(b"!-1\r\n", DecodeError::InvalidBulkLength);
        err(b"$536870913\r\n", DecodeError::InvalidBulkLength);
        err(b"$3\r\nabcde", DecodeError::ExpectedCrlf);
        err(b"$3\r\nabc\n\n", DecodeError::ExpectedCrlf);
        err(b"+OK\rX", DecodeError::ExpectedCrlf);
        // A bare LF inside a line; found by fuzzing.
        err(b"+a\nb\r\n", DecodeError::ExpectedCrlf);
        err(b"*1\r\n-a\n", DecodeError::ExpectedCrlf);
        err(b"*-2\r\n", DecodeError::InvalidMultibulkLength);
        err(b"%-1\r\n", DecodeError::InvalidMultibulkLength);
        err(b"*2147483648\r\n", DecodeError::InvalidMultibulkLength);
        err(b"*x\r\n", DecodeError::InvalidMultibulkLength);
        err(b"_x\r\n", DecodeError::InvalidNull);
        err(b"#x\r\n", DecodeError::InvalidBoolean);
        err(b",1.2.3\r\n", DecodeError::InvalidDouble);
        err(b"(12x\r\n", DecodeError::InvalidBigNumber);
        err(b"=3\r\ntxt\r\n", DecodeError::InvalidVerbatim);
        err(b"=4\r\ntxt-\r\n", DecodeError::InvalidVerbatim);
        err(b"$?\r\n", DecodeError::Streamed);
        err(b"*?\r\n", DecodeError::Streamed);
        err(b"*1\r\n*1\r\nx", DecodeError::InvalidType(b'x'));
    }

    #[test]
    fn limits() {
        let limits = Limits {
            max_bulk_len: 4,
            max_multibulk_len: 2,
            max_depth: 2,
            max_inline_len: 8,
            ..Limits::default()
        };
        err_with(limits, b"$5\r\n", DecodeError::InvalidBulkLength);
        err_with(limits, b"*3\r\n", DecodeError::InvalidMultibulkLength);
        err_with(limits, b"%3\r\n", DecodeError::InvalidMultibulkLength);
        err_with(limits, b"*1\r\n*1\r\n*1\r\n", DecodeError::TooDeep(2));
        err_with(limits, b"+123456789", DecodeError::LineTooLong);
        err_with(limits, b"+123456789\r\n", DecodeError::LineTooLong);
        err_with(
            limits,
            b"*000000000",
            DecodeError::TooBigMultibulkCountString,
        );
        err_with(limits, b"$000000000", DecodeError::TooBigBulkCountString);
        // At the limits exactly, all is well.
        let mut decoder = Decoder::with_limits(limits);
        let mut buf = BytesMut::from(&b"*2\r\n*1\r\n$4\r\nabcd\r\n+1234567\r\n"[..]);
        assert!(decoder.decode(&mut buf).unwrap().is_some());
    }

    #[test]
    fn huge_claims_allocate_nothing() {
        // A claim of 2^31-1 elements with none sent is waited for, with no
        // allocation sized by the claim.
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::from(&b"*2147483647\r\n"[..]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        assert!(decoder.scan.items.capacity() < 16);
        let mut buf = BytesMut::from(&b"$536870912\r\n"[..]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
    }

    #[test]
    fn zero_copy() {
        let mut buf = BytesMut::from(&b"*2\r\n$5\r\nhello\r\n$5\r\nworld\r\n"[..]);
        let base = buf.as_ptr() as usize;
        let frame = decode(&mut buf).unwrap().unwrap();
        let Frame::Array(items) = frame else {
            panic!("not an array")
        };
        let Frame::Bulk(hello) = &items[0] else {
            panic!("not a bulk")
        };
        // The bulk points into the original read buffer: nothing was copied.
        assert_eq!(hello.as_ptr() as usize, base + 8);
    }

    #[test]
    fn consumer_taking_bytes_restarts_cleanly() {
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::from(&b"*2\r\n:1\r\n"[..]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        buf.clear();
        buf.put_slice(b":7\r\n");
        assert_eq!(decoder.decode(&mut buf), Ok(Some(Frame::Integer(7))));
    }

    /// Rebuilds an owned frame by walking a view, to check the view's
    /// navigation against the builder.
    fn view_to_frame(view: crate::FrameRef<'_>) -> Frame {
        use crate::FrameRef as R;
        let own = Bytes::copy_from_slice;
        match view {
            R::Simple(s) => Frame::Simple(own(s)),
            R::Error(s) => Frame::Error(own(s)),
            R::Integer(i) => Frame::Integer(i),
            R::Bulk(s) => Frame::Bulk(own(s)),
            R::NullBulk => Frame::NullBulk,
            R::NullArray => Frame::NullArray,
            R::Null => Frame::Null,
            R::Boolean(b) => Frame::Boolean(b),
            R::Double(d) => Frame::Double(d),
            R::BigNumber(s) => Frame::BigNumber(own(s)),
            R::BulkError(s) => Frame::BulkError(own(s)),
            R::Verbatim { format, text } => Frame::Verbatim {
                format,
                text: own(text),
            },
            R::Array(e) => Frame::Array(e.iter().map(view_to_frame).collect()),
            R::Set(e) => Frame::Set(e.iter().map(view_to_frame).collect()),
            R::Push(e) => Frame::Push(e.iter().map(view_to_frame).collect()),
            R::Map(e) => Frame::Map(
                e.pairs()
                    .map(|(k, v)| (view_to_frame(k), view_to_frame(v)))
                    .collect(),
            ),
            R::Attribute(e) => {
                let mut all: Vec<Frame> = e.iter().map(view_to_frame).collect();
                let frame = Box::new(all.pop().unwrap_or(Frame::Null));
                let mut attrs = Vec::new();
                let mut it = all.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    attrs.push((k, v));
                }
                Frame::Attribute { attrs, frame }
            }
        }
    }

    /// Frames that re-encode to exactly their decoded bytes: no NaN (it is
    /// not equal to itself), simple strings without CR or LF.
    pub(crate) fn arb_frame() -> impl Strategy<Value = Frame> {
        let line = "[a-zA-Z0-9 _.:-]{0,12}".prop_map(|s| Bytes::from(s.into_bytes()));
        let blob = proptest::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from);
        let leaf = prop_oneof![
            line.clone().prop_map(Frame::Simple),
            line.clone().prop_map(Frame::Error),
            any::<i64>().prop_map(Frame::Integer),
            blob.clone().prop_map(Frame::Bulk),
            Just(Frame::NullBulk),
            Just(Frame::NullArray),
            Just(Frame::Null),
            any::<bool>().prop_map(Frame::Boolean),
            any::<f64>()
                .prop_filter("NaN is not equal to itself", |d| !d.is_nan())
                .prop_map(Frame::Double),
            "-?[1-9][0-9]{0,40}".prop_map(|s| Frame::BigNumber(Bytes::from(s.into_bytes()))),
            blob.clone().prop_map(Frame::BulkError),
            ("[a-z]{3}", blob).prop_map(|(f, text)| Frame::Verbatim {
                format: f.as_bytes().try_into().unwrap_or(*b"txt"),
                text,
            }),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            let pairs = proptest::collection::vec((inner.clone(), inner.clone()), 0..4);
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Frame::Array),
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Frame::Set),
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Frame::Push),
                pairs.clone().prop_map(Frame::Map),
                (pairs, inner).prop_map(|(attrs, f)| Frame::Attribute {
                    attrs,
                    frame: Box::new(f)
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(frame in arb_frame()) {
            let mut buf = BytesMut::new();
            frame.encode(&mut buf);
            let wire = buf.clone().freeze();
            prop_assert_eq!(decode(&mut buf), Ok(Some(frame.clone())));
            prop_assert!(buf.is_empty());
            // And re-encoding the decoded frame gives the same bytes.
            let mut again = BytesMut::new();
            frame.encode(&mut again);
            prop_assert_eq!(&again[..], &wire[..]);
        }

        #[test]
        fn split_anywhere_equals_whole(
            frames in proptest::collection::vec(arb_frame(), 1..4),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut wire = BytesMut::new();
            for f in &frames {
                f.encode(&mut wire);
            }
            let mut decoder = Decoder::new();
            let (got, buf) =
                crate::testing::in_pieces(&wire, &cuts, |buf| decoder.decode(buf).unwrap());
            prop_assert_eq!(got, frames);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn raw_view_matches_frame(frame in arb_frame()) {
            let mut buf = BytesMut::new();
            frame.encode(&mut buf);
            let wire = buf.clone().freeze();
            let raw = Decoder::new().decode_raw(&mut buf).unwrap().unwrap();
            prop_assert_eq!(raw.as_bytes(), &wire);
            prop_assert_eq!(view_to_frame(raw.view()), frame.clone());
            prop_assert_eq!(raw.to_frame(), frame);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut buf = BytesMut::from(&bytes[..]);
            let before = buf.clone();
            if let Ok(None) | Err(_) = decode(&mut buf) {
                prop_assert_eq!(buf, before);
            }
        }
    }
}

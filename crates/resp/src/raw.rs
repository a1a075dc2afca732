//! Decoded frames read in place: one buffer and an index of its elements.

use bytes::Bytes;

use crate::Frame;
use crate::decode::{Head, Slicer, build};

/// A decoded frame kept as the bytes it arrived in plus an index of its
/// elements, from [`Decoder::decode_raw`](crate::Decoder::decode_raw).
///
/// It is the cheapest complete decode: every element has been validated and
/// located, but none has been turned into an owned value. Read it through
/// [`RawFrame::view`], forward it untouched with [`RawFrame::as_bytes`], or
/// make an owned [`Frame`] with [`RawFrame::to_frame`]. A `&[u8]` read from
/// the view becomes an owned zero-copy `Bytes` with
/// `raw.as_bytes().slice_ref(s)`.
///
/// ```
/// use bytes::BytesMut;
/// use ember_resp::{Decoder, FrameRef};
///
/// let mut buf = BytesMut::from(&b"*3\r\n$1\r\na\r\n$-1\r\n:7\r\n"[..]);
/// let raw = Decoder::new().decode_raw(&mut buf).unwrap().unwrap();
/// let FrameRef::Array(items) = raw.view() else { panic!() };
/// let items: Vec<FrameRef> = items.iter().collect();
/// assert!(matches!(items[..], [FrameRef::Bulk(b"a"), FrameRef::NullBulk, FrameRef::Integer(7)]));
/// assert_eq!(raw.as_bytes().len(), 20);
/// ```
#[derive(Debug, Clone)]
pub struct RawFrame {
    bytes: Bytes,
    items: Items,
}

/// The index of a raw frame. A scalar frame, the most common reply, keeps
/// its one item inline and costs no allocation.
#[derive(Debug, Clone)]
enum Items {
    One(Head),
    Many(Vec<Head>),
}

impl RawFrame {
    /// A raw frame over `bytes`, taking the scanned `items` (and leaving the
    /// caller's vector empty, with its capacity when it had one item).
    pub(crate) fn new(bytes: Bytes, items: &mut Vec<Head>) -> Self {
        let items = match items.len() {
            1 => Items::One(items.pop().unwrap_or(Head::Null)),
            _ => Items::Many(std::mem::take(items)),
        };
        RawFrame { bytes, items }
    }

    fn items(&self) -> &[Head] {
        match &self.items {
            Items::One(head) => std::slice::from_ref(head),
            Items::Many(items) => items,
        }
    }

    /// The frame's bytes exactly as they arrived.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// A borrowed view of the frame.
    pub fn view(&self) -> FrameRef<'_> {
        self.at(0)
    }

    /// The frame as an owned [`Frame`], its strings zero-copy slices of
    /// [`RawFrame::as_bytes`].
    pub fn to_frame(&self) -> Frame {
        let mut slicer = Slicer {
            bytes: self.bytes.clone(),
            left: usize::MAX,
        };
        build(&mut self.items().iter(), &mut slicer)
    }

    fn at(&self, i: usize) -> FrameRef<'_> {
        let b = |r: &std::ops::Range<usize>| &self.bytes[r.clone()];
        match &self.items()[i] {
            Head::Simple(r) => FrameRef::Simple(b(r)),
            Head::Error(r) => FrameRef::Error(b(r)),
            Head::Integer(v) => FrameRef::Integer(*v),
            Head::Bulk(r) => FrameRef::Bulk(b(r)),
            Head::NullBulk => FrameRef::NullBulk,
            Head::NullArray => FrameRef::NullArray,
            Head::Null => FrameRef::Null,
            Head::Boolean(v) => FrameRef::Boolean(*v),
            Head::Double(v) => FrameRef::Double(*v),
            Head::BigNumber(r) => FrameRef::BigNumber(b(r)),
            Head::BulkError(r) => FrameRef::BulkError(b(r)),
            Head::Verbatim(format, r) => FrameRef::Verbatim {
                format: *format,
                text: b(r),
            },
            Head::Aggregate { marker, len, .. } => {
                let children = Elements {
                    raw: self,
                    first: i + 1,
                    len: match marker {
                        b'%' => 2 * len,
                        b'|' => 2 * len + 1,
                        _ => *len,
                    },
                };
                match marker {
                    b'%' => FrameRef::Map(children),
                    b'~' => FrameRef::Set(children),
                    b'>' => FrameRef::Push(children),
                    b'|' => FrameRef::Attribute(children),
                    _ => FrameRef::Array(children),
                }
            }
        }
    }

    /// The index just past the element at `i` and its descendants.
    fn skip(&self, i: usize) -> usize {
        match self.items()[i] {
            Head::Aggregate { end, .. } => end,
            _ => i + 1,
        }
    }
}

impl From<&RawFrame> for Frame {
    fn from(raw: &RawFrame) -> Frame {
        raw.to_frame()
    }
}

/// A borrowed view of one element of a [`RawFrame`]; the variants mirror
/// [`Frame`]'s.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum FrameRef<'a> {
    /// A simple string.
    Simple(&'a [u8]),
    /// An error line.
    Error(&'a [u8]),
    /// An integer.
    Integer(i64),
    /// A bulk string.
    Bulk(&'a [u8]),
    /// RESP2's null bulk string.
    NullBulk,
    /// RESP2's null array.
    NullArray,
    /// RESP3's null.
    Null,
    /// A boolean.
    Boolean(bool),
    /// A double.
    Double(f64),
    /// A big number's digits.
    BigNumber(&'a [u8]),
    /// A bulk error.
    BulkError(&'a [u8]),
    /// A verbatim string.
    Verbatim {
        /// The three-byte format, such as `*b"txt"`.
        format: [u8; 3],
        /// The text after `format:`.
        text: &'a [u8],
    },
    /// An array.
    Array(Elements<'a>),
    /// A map: its elements alternate key, value (see [`Elements::pairs`]).
    Map(Elements<'a>),
    /// A set.
    Set(Elements<'a>),
    /// A push.
    Push(Elements<'a>),
    /// Attributes: key, value pairs, then the frame they describe as the
    /// last element.
    Attribute(Elements<'a>),
}

/// The children of an aggregate in a [`RawFrame`].
#[derive(Debug, Clone, Copy)]
pub struct Elements<'a> {
    raw: &'a RawFrame,
    first: usize,
    len: usize,
}

impl<'a> Elements<'a> {
    /// The number of children (twice the pair count for a map).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no children.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The children, in order.
    pub fn iter(&self) -> ElementsIter<'a> {
        ElementsIter {
            raw: self.raw,
            next: self.first,
            left: self.len,
        }
    }

    /// The children taken two at a time, as a map's key-value pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (FrameRef<'a>, FrameRef<'a>)> + 'a {
        let mut it = self.iter();
        std::iter::from_fn(move || Some((it.next()?, it.next()?)))
    }
}

impl<'a> IntoIterator for Elements<'a> {
    type Item = FrameRef<'a>;
    type IntoIter = ElementsIter<'a>;

    fn into_iter(self) -> ElementsIter<'a> {
        self.iter()
    }
}

/// An iterator over the children of an aggregate; see [`Elements::iter`].
#[derive(Debug, Clone)]
pub struct ElementsIter<'a> {
    raw: &'a RawFrame,
    next: usize,
    left: usize,
}

impl<'a> Iterator for ElementsIter<'a> {
    type Item = FrameRef<'a>;

    fn next(&mut self) -> Option<FrameRef<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let i = self.next;
        self.next = self.raw.skip(i);
        Some(self.raw.at(i))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for ElementsIter<'_> {}

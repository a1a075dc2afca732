//! Decoding client requests the way a Redis server reads them.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use crate::parse::quick_len;
use crate::{DecodeError, Limits, parse_int, split_args};

/// Argument positions: a command of up to four arguments (GET, SET, HGET,
/// INCRBY...) keeps them inline, so decoding it allocates nothing.
type Args = smallvec::SmallVec<[Range<usize>; 4]>;

/// Argument ranges kept between requests; see `decode::KEEP_ITEMS`.
const KEEP_ARGS: usize = 1024;

/// Redis's preallocation cap for a request's argument vector.
const PREALLOC_ARGS: usize = 1024;

/// A resumable decoder of client requests: what a server reads.
///
/// A request is either a multibulk (an array of bulk strings, what client
/// libraries send) or an inline command (a text line, what `telnet` and
/// `nc` users type). The grammar, the limits and the errors are Redis's own
/// (`processMultibulkBuffer` and `processInlineBuffer`), including its
/// leniencies: the two bytes after a bulk payload are skipped unchecked, and
/// an inline line may end in LF alone.
///
/// Each decoded [`Request`] shares the read buffer: its arguments are ranges
/// of the request's bytes, not copies (inline arguments are unescaped into
/// a buffer of their own).
///
/// An empty request (`*0\r\n`, `*-1\r\n`, a blank line) decodes as a
/// request with no arguments; Redis ignores those without replying.
///
/// Redis checks the 64 KiB line limits (no line end yet and more than
/// [`Limits::max_inline_len`] bytes waiting) after each read of at most
/// 16 KiB, so a line a little over the limit passes when its end arrives in
/// the same read. This decoder applies the same check to whatever the
/// buffer holds; a server that wants Redis's behaviour exactly decodes after
/// each read of at most 16 KiB, as Redis does.
///
/// ```
/// use bytes::BytesMut;
/// use ember_resp::RequestDecoder;
///
/// let mut decoder = RequestDecoder::new();
/// let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n"[..]);
/// let get = decoder.decode(&mut buf).unwrap().unwrap();
/// assert_eq!(get.len(), 2);
/// assert_eq!(&get[0], b"GET");
/// assert_eq!(get.to_vec(), [&b"GET"[..], b"k"]);
/// let ping = decoder.decode(&mut buf).unwrap().unwrap();
/// assert_eq!(&ping[0], b"PING");
/// assert_eq!(decoder.decode(&mut buf), Ok(None));
/// ```
#[derive(Debug)]
pub struct RequestDecoder {
    limits: Limits,
    authenticated: bool,
    /// Bytes of the current request scanned so far.
    pos: usize,
    /// How far past the current line's first byte we already searched for
    /// its end.
    searched: usize,
    /// Bulk arguments still expected; `None` before the request's header.
    remaining: Option<u64>,
    /// Ranges of the arguments read so far.
    args: Args,
    /// Where the payload of a big argument (see [`BIG_ARG`]) starts while
    /// it is arriving; 0 otherwise.
    big_data: usize,
    /// The buffer length the request being read needs at least, while a
    /// big argument's payload arrives; 0 otherwise.
    needed: usize,
}

/// An argument at least this long is a big one (Redis's
/// `PROTO_MBULK_BIG_ARG`): while its payload arrives, Redis holds it in a
/// buffer of its exact size, its header already consumed.
pub const BIG_ARG: usize = 32 * 1024;

impl Default for RequestDecoder {
    fn default() -> Self {
        Self::with_limits(Limits::default())
    }
}

impl RequestDecoder {
    /// A decoder with Redis's default [`Limits`], for an authenticated client.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder enforcing `limits`, for an authenticated client.
    pub fn with_limits(limits: Limits) -> Self {
        RequestDecoder {
            limits,
            authenticated: true,
            pos: 0,
            searched: 0,
            remaining: None,
            args: Args::new(),
            big_data: 0,
            needed: 0,
        }
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Changes the limits (after `CONFIG SET proto-max-bulk-len`, say).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Whether the client has authenticated. Before it has, Redis allows at
    /// most [`Limits::unauthenticated_multibulk_len`] arguments of at most
    /// [`Limits::unauthenticated_bulk_len`] bytes each.
    pub fn set_authenticated(&mut self, authenticated: bool) {
        self.authenticated = authenticated;
    }

    /// Decodes the request at the front of `buf` into its arguments.
    ///
    /// Returns `Ok(Some(args))` and removes the request's bytes from `buf`;
    /// `Ok(None)` when more bytes are needed, with `buf` untouched; or an
    /// error, with `buf` untouched and the decoder reset. After an error the
    /// stream cannot be trusted: reply with
    /// [`DecodeError::to_redis_error`] and close, as Redis does.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, DecodeError> {
        if self.pos == 0
            && self.remaining.is_none()
            && let Some(request) = self.whole(buf)
        {
            return Ok(Some(request));
        }
        self.decode_general(buf)
    }

    /// [`RequestDecoder::decode`] without the fast path: resumable, and the
    /// judge of every shape the fast path declines.
    fn decode_general(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, DecodeError> {
        if buf.len() < self.pos {
            self.reset();
        }
        let result = if self.remaining.is_none() && buf.first() != Some(&b'*') {
            self.inline(buf)
        } else {
            self.multibulk(buf)
        };
        if result.is_err() {
            self.reset();
        }
        result
    }

    /// Of the bytes buffered for a request not all read yet: how many are
    /// consumed (its complete arguments and their headers, and the header
    /// of a big argument whose payload is arriving), and how many of those
    /// are the complete arguments' payloads. Redis shows the rest of the
    /// buffer as the client's `qbuf`, and the payloads as its `argv-mem`.
    pub fn progress(&self) -> (usize, usize) {
        let consumed = if self.big_data > 0 {
            self.big_data
        } else {
            self.pos
        };
        (consumed, self.args.iter().map(|r| r.len()).sum())
    }

    /// While a big argument's payload arrives, the buffer length the
    /// request needs at least; 0 otherwise. A reader can size its buffer
    /// to it once, as Redis does, rather than grow it by doubling.
    pub fn needed(&self) -> usize {
        self.needed
    }

    /// Forgets any partly read request.
    pub fn reset(&mut self) {
        self.big_data = 0;
        self.needed = 0;
        self.pos = 0;
        self.searched = 0;
        self.remaining = None;
        self.args.clear();
        if self.args.capacity() > KEEP_ARGS {
            self.args = Args::new();
        }
    }

    /// The fast path: a whole multibulk request of the common shape, all of
    /// it in `buf`, each header a plain number (`*2\r\n$3\r\nGET\r\n...`),
    /// within the limits. One pass, no state kept between calls. Anything
    /// else (a request not all here yet, an odd or refused header, an
    /// unauthenticated client) returns `None` and takes the general path,
    /// which gives the same request or the exact error.
    #[inline]
    fn whole(&mut self, buf: &mut BytesMut) -> Option<Request> {
        let b: &[u8] = buf;
        if b.first() != Some(&b'*') || !self.authenticated {
            return None;
        }
        let (count, cr) = plain_len(b, 1)?;
        if count == 0 || count > self.limits.max_multibulk_len.min(i32::MAX as u64) {
            return None;
        }
        let mut args = Args::new();
        let mut at = cr + 2;
        for _ in 0..count {
            if b.get(at) != Some(&b'$') {
                return None;
            }
            let (len, cr) = plain_len(b, at + 1)?;
            if len > self.limits.max_bulk_len {
                return None;
            }
            let data = cr + 2;
            let end = data + len as usize;
            // As the general path: the two bytes after the payload must be
            // here, and are skipped unchecked.
            if b.len() < end + 2 {
                return None;
            }
            args.push(data..end);
            at = end + 2;
        }
        self.searched = 0;
        let bytes = buf.split_to(at).freeze();
        Some(Request { bytes, args })
    }

    fn inline(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, DecodeError> {
        if buf.is_empty() {
            return Ok(None);
        }
        let Some(offset) = memchr::memchr(b'\n', &buf[self.searched..]) else {
            self.searched = buf.len();
            if buf.len() > self.limits.max_inline_len {
                return Err(DecodeError::TooBigInlineRequest);
            }
            return Ok(None);
        };
        let lf = self.searched + offset;
        let end = if lf > 0 && buf[lf - 1] == b'\r' {
            lf - 1
        } else {
            lf
        };
        let args = split_args(&buf[..end]).ok_or(DecodeError::UnbalancedQuotes)?;
        let _ = buf.split_to(lf + 1);
        self.searched = 0;
        Ok(Some(Request::from_args(&args)))
    }

    fn multibulk(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, DecodeError> {
        let limits = self.limits;
        let remaining = match self.remaining {
            Some(n) => n,
            None => {
                let (quick, cr) =
                    match self.header(buf, b'*', DecodeError::TooBigMultibulkCountString)? {
                        Some(found) => found,
                        None => return Ok(None),
                    };
                let count = quick
                    .or_else(|| parse_int(&buf[1..cr]))
                    .filter(|&n| n <= i64::from(i32::MAX) && n <= clamp(limits.max_multibulk_len))
                    .ok_or(DecodeError::InvalidMultibulkLength)?;
                if !self.authenticated && count > clamp(limits.unauthenticated_multibulk_len) {
                    return Err(DecodeError::UnauthenticatedMultibulkLength);
                }
                if count <= 0 {
                    let _ = buf.split_to(cr + 2);
                    self.reset();
                    return Ok(Some(Request::default()));
                }
                self.pos = cr + 2;
                self.searched = 0;
                let count = count as u64;
                self.args.reserve(PREALLOC_ARGS.min(count as usize));
                count
            }
        };
        self.remaining = Some(remaining);
        for _ in 0..remaining {
            let start = self.pos;
            let (quick, cr) = match self.header(buf, b'$', DecodeError::TooBigBulkCountString)? {
                Some(found) => found,
                None => return Ok(None),
            };
            if buf[start] != b'$' {
                return Err(DecodeError::ExpectedBulk(buf[start]));
            }
            let len = quick
                .or_else(|| parse_int(&buf[start + 1..cr]))
                .and_then(|n| u64::try_from(n).ok())
                .filter(|&n| n <= limits.max_bulk_len)
                .ok_or(DecodeError::InvalidBulkLength)?;
            if !self.authenticated && len > limits.unauthenticated_bulk_len {
                return Err(DecodeError::UnauthenticatedBulkLength);
            }
            let data = cr + 2;
            let Some(end) = usize::try_from(len)
                .ok()
                .and_then(|len| data.checked_add(len))
            else {
                return Err(DecodeError::InvalidBulkLength);
            };
            if buf.len() < end + 2 {
                // Keep the header's line end found, so the next call goes
                // straight to the length check.
                self.searched = cr - start;
                if len as usize >= BIG_ARG {
                    self.big_data = data;
                    self.needed = end + 2;
                }
                return Ok(None);
            }
            self.big_data = 0;
            self.needed = 0;
            self.args.push(data..end);
            // Redis skips the two bytes after the payload without looking.
            self.pos = end + 2;
            self.searched = 0;
            self.remaining = Some(self.remaining.unwrap_or(1) - 1);
        }
        let bytes = buf.split_to(self.pos).freeze();
        let args = std::mem::take(&mut self.args);
        self.reset();
        Ok(Some(Request { bytes, args }))
    }

    /// Reads the header line at `self.pos`: the quick path for a plain
    /// number, else the general search. Returns the number if the quick path
    /// read it, and the index of the line's `\r`.
    fn header(
        &mut self,
        buf: &[u8],
        marker: u8,
        too_long: DecodeError,
    ) -> Result<Option<(Option<i64>, usize)>, DecodeError> {
        // The quick path reads after the marker, so it is only for lines
        // that start with the right one; Redis's search for the line end
        // starts at the marker itself.
        if buf.get(self.pos) == Some(&marker)
            && let Some((n, cr)) = quick_len(buf, self.pos + 1)
        {
            // Like Redis, wait until the byte after `\r` is here too.
            return Ok((cr + 1 < buf.len()).then_some((Some(n), cr)));
        }
        Ok(self.line_end(buf, too_long)?.map(|cr| (None, cr)))
    }

    /// Finds the `\r` ending the header line at `self.pos`, the way Redis
    /// does: it looks for `\r` alone, and waits while that `\r` is the last
    /// byte in the buffer.
    fn line_end(
        &mut self,
        buf: &[u8],
        too_long: DecodeError,
    ) -> Result<Option<usize>, DecodeError> {
        let from = self.pos + self.searched;
        match memchr::memchr(b'\r', &buf[from.min(buf.len())..]) {
            Some(offset) if from + offset + 1 < buf.len() => {
                self.searched = 0;
                Ok(Some(from + offset))
            }
            Some(offset) => {
                self.searched = from + offset - self.pos;
                Ok(None)
            }
            None => {
                self.searched = buf.len().saturating_sub(self.pos);
                if self.searched > self.limits.max_inline_len {
                    return Err(too_long);
                }
                Ok(None)
            }
        }
    }
}

/// One client request: its arguments, command name first.
///
/// The arguments live in one shared buffer (for a multibulk request, the
/// bytes it arrived in), so decoding touches no reference count per
/// argument. Read them as `&[u8]` with indexing, [`Request::get`] or
/// [`Request::iter`]; take one as an owned, zero-copy [`Bytes`] with
/// [`Request::arg_bytes`] when it must outlive the request. Note that such a
/// slice keeps the whole read buffer it came from alive: a server storing a
/// small value for long may prefer to copy it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    bytes: Bytes,
    args: Args,
}

impl Request {
    /// A request holding a copy of `args`, as if it had been decoded.
    pub fn from_args<A: AsRef<[u8]>>(args: &[A]) -> Request {
        let mut bytes = BytesMut::with_capacity(args.iter().map(|a| a.as_ref().len()).sum());
        let mut ranges = Args::with_capacity(args.len());
        for arg in args {
            let start = bytes.len();
            bytes.extend_from_slice(arg.as_ref());
            ranges.push(start..bytes.len());
        }
        Request {
            bytes: bytes.freeze(),
            args: ranges,
        }
    }

    /// The number of arguments, the command name included.
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// The bytes the request holds: as decoded, its whole encoding.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the request has no arguments at all (an empty request).
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    /// Argument `i`, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.args.get(i).map(|r| &self.bytes[r.clone()])
    }

    /// Argument `i` as an owned slice of the shared buffer (no copy).
    pub fn arg_bytes(&self, i: usize) -> Option<Bytes> {
        self.args.get(i).map(|r| self.bytes.slice(r.clone()))
    }

    /// The arguments, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + DoubleEndedIterator + '_ {
        self.args.iter().map(|r| &self.bytes[r.clone()])
    }

    /// All arguments as owned, zero-copy slices.
    pub fn to_vec(&self) -> Vec<Bytes> {
        self.args
            .iter()
            .map(|r| self.bytes.slice(r.clone()))
            .collect()
    }
}

impl std::ops::Index<usize> for Request {
    type Output = [u8];

    /// Argument `i`. Panics past the end, like slice indexing; use
    /// [`Request::get`] where `i` comes from the client.
    fn index(&self, i: usize) -> &[u8] {
        &self.bytes[self.args[i].clone()]
    }
}

impl PartialEq for Request {
    fn eq(&self, other: &Request) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Request {}

/// A header's number for [`RequestDecoder::whole`]: the digits from
/// `start` up to a `\r`, canonical (no sign, no leading zero), at most 9 of
/// them. Returns the number and the index of the `\r`; `None` for any other
/// shape, which the general path then judges.
#[inline]
fn plain_len(b: &[u8], start: usize) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    let mut i = start;
    loop {
        let &d = b.get(i)?;
        if d == b'\r' {
            break;
        }
        let digit = d.wrapping_sub(b'0');
        if digit > 9 || i - start == 9 {
            return None;
        }
        v = v * 10 + u64::from(digit);
        i += 1;
    }
    let digits = i - start;
    if digits == 0 || (digits > 1 && b[start] == b'0') {
        return None;
    }
    // The general path waits for the byte after `\r` too.
    (i + 1 < b.len()).then_some((v, i))
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use bytes::BufMut;
    use proptest::prelude::*;

    use super::*;

    fn args(list: &[&[u8]]) -> Request {
        Request::from_args(list)
    }

    /// A valid request: whole, with a following request, byte by byte, and
    /// every strict prefix waits for more.
    #[track_caller]
    fn ok(input: &[u8], want: &[&[u8]]) {
        let want = args(want);
        let mut buf = BytesMut::from(input);
        assert_eq!(
            RequestDecoder::new().decode(&mut buf),
            Ok(Some(want.clone()))
        );
        assert!(buf.is_empty(), "{input:?} left {buf:?}");

        let mut buf = BytesMut::from(input);
        buf.put_slice(b"*1\r\n$4\r\nPING\r\n");
        let mut decoder = RequestDecoder::new();
        assert_eq!(decoder.decode(&mut buf), Ok(Some(want.clone())));
        assert_eq!(decoder.decode(&mut buf), Ok(Some(args(&[b"PING"]))));

        for end in 0..input.len() {
            let mut buf = BytesMut::from(&input[..end]);
            assert_eq!(
                RequestDecoder::new().decode(&mut buf),
                Ok(None),
                "prefix {end}"
            );
            assert_eq!(&buf[..], &input[..end]);
        }

        let mut decoder = RequestDecoder::new();
        let mut buf = BytesMut::new();
        for (i, &byte) in input.iter().enumerate() {
            buf.put_u8(byte);
            let got = decoder.decode(&mut buf).unwrap();
            assert_eq!(got.is_some(), i + 1 == input.len(), "byte-by-byte at {i}");
            if let Some(got) = got {
                assert_eq!(got, want);
            }
        }
    }

    #[track_caller]
    fn err(decoder: &mut RequestDecoder, input: &[u8], want: DecodeError) {
        let mut buf = BytesMut::from(input);
        assert_eq!(decoder.decode(&mut buf), Err(want), "{input:?}");
        assert_eq!(&buf[..], input);
    }

    #[test]
    fn multibulk() {
        ok(b"*1\r\n$4\r\nPING\r\n", &[b"PING"]);
        ok(
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n",
            &[b"SET", b"k", b""],
        );
        ok(
            b"*2\r\n$4\r\nECHO\r\n$4\r\na\r\nb\r\n",
            &[b"ECHO", b"a\r\nb"],
        );
        ok(b"*0\r\n", &[]);
        ok(b"*-1\r\n", &[]);
        ok(b"*-5\r\n", &[]);
        // Redis skips the two bytes after a payload without checking them.
        ok(b"*1\r\n$1\r\naXY", &[b"a"]);
        // ... and a header's `\r` need not be followed by `\n`.
        ok(b"*1\r $1\rxaXY", &[b"a"]);
    }

    #[test]
    fn inline() {
        ok(b"PING\r\n", &[b"PING"]);
        ok(b"PING\n", &[b"PING"]);
        ok(b"SET k \"a b\"\r\n", &[b"SET", b"k", b"a b"]);
        ok(b"\r\n", &[]);
        ok(b"   \n", &[]);
        ok(b"GET 'x y'\r\n", &[b"GET", b"x y"]);
    }

    #[test]
    fn errors_are_redis_errors() {
        let d = &mut RequestDecoder::new();
        err(d, b"*abc\r\n", DecodeError::InvalidMultibulkLength);
        err(d, b"*2147483648\r\n", DecodeError::InvalidMultibulkLength);
        err(d, b"*1\r\n$-1\r\n", DecodeError::InvalidBulkLength);
        err(d, b"*1\r\n$x\r\n", DecodeError::InvalidBulkLength);
        err(d, b"*1\r\n$536870913\r\n", DecodeError::InvalidBulkLength);
        err(d, b"*1\r\nfoo\r\n", DecodeError::ExpectedBulk(b'f'));
        err(
            d,
            b"*2\r\n$1\r\na\r\n*1\r\n",
            DecodeError::ExpectedBulk(b'*'),
        );
        err(d, b"SET k \"a\r\n", DecodeError::UnbalancedQuotes);
        let long = vec![b'a'; 64 * 1024 + 1];
        err(d, &long, DecodeError::TooBigInlineRequest);
        let mut long_count = b"*".to_vec();
        long_count.extend(vec![b'1'; 64 * 1024]);
        err(d, &long_count, DecodeError::TooBigMultibulkCountString);
        let mut long_bulk = b"*1\r\n$".to_vec();
        long_bulk.extend(vec![b'1'; 64 * 1024]);
        err(d, &long_bulk, DecodeError::TooBigBulkCountString);
        // An inline line may be long if its newline has already arrived.
        let mut line = vec![b'a'; 100 * 1024];
        line.push(b'\n');
        let mut buf = BytesMut::from(&line[..]);
        assert_eq!(d.decode(&mut buf).unwrap().unwrap()[0].len(), 100 * 1024);
    }

    #[test]
    fn unauthenticated_limits() {
        let d = &mut RequestDecoder::new();
        d.set_authenticated(false);
        let mut eleven = BytesMut::new();
        crate::encode_command(&mut eleven, &[&b"x"[..]; 11]);
        err(d, &eleven, DecodeError::UnauthenticatedMultibulkLength);
        err(d, b"*11\r\n", DecodeError::UnauthenticatedMultibulkLength);
        err(
            d,
            b"*1\r\n$16385\r\n",
            DecodeError::UnauthenticatedBulkLength,
        );
        let mut ten = BytesMut::new();
        crate::encode_command(&mut ten, &[&[b'x'; 16384][..]; 10]);
        assert_eq!(d.decode(&mut ten).unwrap().unwrap().len(), 10);
        d.set_authenticated(true);
        let mut eleven = BytesMut::new();
        crate::encode_command(&mut eleven, &[&b"x"[..]; 11]);
        assert_eq!(d.decode(&mut eleven).unwrap().unwrap().len(), 11);
    }

    #[test]
    fn huge_claims_allocate_little() {
        let mut d = RequestDecoder::new();
        let mut buf = BytesMut::from(&b"*2147483647\r\n$3\r\nSET\r\n"[..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert!(d.args.capacity() <= PREALLOC_ARGS);
        let mut buf = BytesMut::from(&b"*1\r\n$536870912\r\nabc"[..]);
        assert_eq!(RequestDecoder::new().decode(&mut buf), Ok(None));
    }

    /// A request as a client might send it: multibulk from arbitrary bytes,
    /// or an inline line of plain words.
    fn arb_request() -> impl Strategy<Value = (Vec<u8>, Vec<Vec<u8>>)> {
        let multibulk =
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 1..6)
                .prop_map(|args| {
                    let mut wire = BytesMut::new();
                    crate::encode_command(&mut wire, &args);
                    (wire.to_vec(), args)
                });
        let inline = proptest::collection::vec("[a-zA-Z0-9:_-]{1,8}", 1..5).prop_map(|words| {
            let line = format!("{}\r\n", words.join(" ")).into_bytes();
            (line, words.into_iter().map(String::into_bytes).collect())
        });
        prop_oneof![multibulk, inline]
    }

    proptest! {
        #[test]
        fn split_anywhere_equals_whole(
            requests in proptest::collection::vec(arb_request(), 1..6),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let wire: Vec<u8> = requests.iter().flat_map(|(w, _)| w.clone()).collect();
            let want: Vec<Vec<Vec<u8>>> = requests.into_iter().map(|(_, a)| a).collect();
            let mut decoder = RequestDecoder::new();
            let (got, buf) = crate::testing::in_pieces(&wire, &cuts, |buf| {
                let request = decoder.decode(buf).unwrap()?;
                Some(request.iter().map(<[u8]>::to_vec).collect::<Vec<_>>())
            });
            prop_assert_eq!(got, want);
            prop_assert!(buf.is_empty());
        }
    }

    /// Headers near the fast path's edges: plain, signed, padded with
    /// zeros, long, not numbers at all.
    fn arb_header() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (0u64..20).prop_map(|n| n.to_string().into_bytes()),
            Just(b"999999999".to_vec()),
            Just(b"1000000000".to_vec()),
            Just(b"-1".to_vec()),
            Just(b"01".to_vec()),
            Just(b"0".to_vec()),
            Just(b"".to_vec()),
            Just(b"x".to_vec()),
        ]
    }

    /// A multibulk request whose headers may lie or be malformed, cut
    /// short or followed by more; what the fast path sees first.
    fn arb_wire() -> impl Strategy<Value = Vec<u8>> {
        (
            arb_header(),
            proptest::collection::vec(
                (
                    prop_oneof![Just(b'$'), Just(b'$'), Just(b'$'), Just(b'*'), Just(b'x')],
                    arb_header(),
                    proptest::collection::vec(any::<u8>(), 0..12),
                    prop_oneof![Just(&b"\r\n"[..]), Just(&b"XY"[..]), Just(&b"\r"[..])],
                    any::<bool>(),
                ),
                0..6,
            ),
            any::<prop::sample::Index>(),
            any::<bool>(),
        )
            .prop_map(|(count, args, cut, honest)| {
                let mut wire = b"*".to_vec();
                if honest {
                    wire.extend_from_slice(args.len().to_string().as_bytes());
                } else {
                    wire.extend_from_slice(&count);
                }
                wire.extend_from_slice(b"\r\n");
                for (marker, len, data, end, honest) in args {
                    wire.push(marker);
                    // Half the headers tell the payload's true length.
                    if honest {
                        wire.extend_from_slice(data.len().to_string().as_bytes());
                    } else {
                        wire.extend_from_slice(&len);
                    }
                    wire.extend_from_slice(b"\r\n");
                    wire.extend_from_slice(&data);
                    wire.extend_from_slice(end);
                }
                // Sometimes only a prefix of it has arrived.
                if cut.index(4) == 0 {
                    let at = cut.index(wire.len() + 1);
                    wire.truncate(at);
                }
                wire
            })
    }

    proptest! {
        /// The fast path answers exactly as the general path would, request
        /// after request, for authenticated clients or not, under small
        /// limits or not.
        #[test]
        fn fast_path_agrees_with_the_general_path(
            wires in proptest::collection::vec(arb_wire(), 1..4),
            authenticated in any::<bool>(),
            small_limits in any::<bool>(),
        ) {
            let wire: Vec<u8> = wires.concat();
            let mut limits = Limits::default();
            if small_limits {
                limits.max_bulk_len = 5;
                limits.max_multibulk_len = 3;
            }
            let mut fast = RequestDecoder::with_limits(limits);
            let mut general = RequestDecoder::with_limits(limits);
            fast.set_authenticated(authenticated);
            general.set_authenticated(authenticated);
            let mut a = BytesMut::from(&wire[..]);
            let mut b = BytesMut::from(&wire[..]);
            loop {
                let x = fast.decode(&mut a);
                let y = general.decode_general(&mut b);
                prop_assert_eq!(&x, &y);
                prop_assert_eq!(&a, &b);
                if !matches!(x, Ok(Some(_))) {
                    break;
                }
            }
        }
    }

    /// A request in progress: its complete arguments are `argv-mem`, and
    /// a big argument's header is consumed while its payload arrives, so
    /// the rest of the buffer is that payload alone (Redis's `qbuf`).
    #[test]
    fn progress_of_a_request_in_pieces() {
        let mut decoder = RequestDecoder::new();
        let mut buf = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1\r\nk"[..]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        assert_eq!(decoder.progress(), (13, 3));
        assert_eq!(decoder.needed(), 0);
        buf.extend_from_slice(b"\r\n$40000\r\n");
        buf.extend_from_slice(&[b'v'; 1000]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        let header = 13 + 7 + 8;
        assert_eq!(decoder.progress(), (header, 4));
        assert_eq!(buf.len() - decoder.progress().0, 1000);
        assert_eq!(decoder.needed(), header + 40000 + 2);
        buf.extend_from_slice(&[b'v'; 39000]);
        buf.extend_from_slice(b"\r\n");
        let request = decoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(request[2].len(), 40000);
        assert_eq!((decoder.progress(), decoder.needed()), ((0, 0), 0));
        // A small argument's header stays in the buffer.
        buf.extend_from_slice(b"*1\r\n$100\r\nab");
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        assert_eq!((decoder.progress(), decoder.needed()), ((4, 0), 0));
    }

    #[test]
    fn fast_path_shapes() {
        // Each of these is whole and plain: the fast path takes it.
        for input in [
            &b"*2\r\n$3\r\nGET\r\n$16\r\nkey:000000000001\r\n"[..],
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n",
            b"*1\r\n$1\r\naXY",
            b"*1\r $1\rxaXY",
        ] {
            let mut buf = BytesMut::from(input);
            let mut decoder = RequestDecoder::new();
            let whole = decoder.whole(&mut buf).expect("fast path");
            let mut again = BytesMut::from(input);
            let general = RequestDecoder::new().decode_general(&mut again).unwrap();
            assert_eq!(Some(whole), general);
            assert!(buf.is_empty());
        }
        // These are for the general path.
        for input in [
            &b"*2\r\n$3\r\nGET\r\n$3\r\nke"[..],
            b"*0\r\n",
            b"*-1\r\n",
            b"*01\r\n$1\r\na\r\n",
            b"*1\r\n$01\r\na\r\n",
            b"*1\r\n$-1\r\n",
            b"*1\r\nfoo\r\n",
            b"PING\r\n",
            b"*1\r\n$1234567890\r\n",
        ] {
            let mut buf = BytesMut::from(input);
            assert!(RequestDecoder::new().whole(&mut buf).is_none(), "{input:?}");
            assert_eq!(&buf[..], input);
        }
        let mut unauthenticated = RequestDecoder::new();
        unauthenticated.set_authenticated(false);
        let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPING\r\n"[..]);
        assert!(unauthenticated.whole(&mut buf).is_none());
    }

    #[test]
    fn multibulk_arguments_share_the_buffer() {
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"[..]);
        let base = buf.as_ptr() as usize;
        let req = RequestDecoder::new().decode(&mut buf).unwrap().unwrap();
        assert_eq!(req[1].as_ptr() as usize, base + 17);
        assert_eq!(req.arg_bytes(1).unwrap().as_ptr() as usize, base + 17);
    }
}

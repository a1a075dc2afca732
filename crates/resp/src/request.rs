//! Decoding client requests the way a Redis server reads them.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use crate::{DecodeError, Limits, parse_int, split_args};

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
/// Multibulk arguments are zero-copy slices of `buf`; inline arguments are
/// copied, since quotes and escapes change them. A server that keeps an
/// argument for long (as a stored value) may want to copy a small one, so it
/// does not hold a whole read buffer alive.
///
/// An empty request (`*0\r\n`, `*-1\r\n`, a blank line) decodes as an empty
/// argument list; Redis ignores those without replying.
///
/// ```
/// use bytes::BytesMut;
/// use ember_resp::RequestDecoder;
///
/// let mut decoder = RequestDecoder::new();
/// let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n"[..]);
/// assert_eq!(decoder.decode(&mut buf).unwrap().unwrap(), [&b"GET"[..], b"k"]);
/// assert_eq!(decoder.decode(&mut buf).unwrap().unwrap(), [&b"PING"[..]]);
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
    args: Vec<Range<usize>>,
}

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
            args: Vec::new(),
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
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, DecodeError> {
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

    /// Forgets any partly read request.
    pub fn reset(&mut self) {
        self.pos = 0;
        self.searched = 0;
        self.remaining = None;
        self.args.clear();
        if self.args.capacity() > KEEP_ARGS {
            self.args.shrink_to(KEEP_ARGS);
        }
    }

    fn inline(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, DecodeError> {
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
        Ok(Some(args))
    }

    fn multibulk(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, DecodeError> {
        let limits = self.limits;
        let remaining = match self.remaining {
            Some(n) => n,
            None => {
                let Some(cr) = self.line_end(buf, DecodeError::TooBigMultibulkCountString)? else {
                    return Ok(None);
                };
                let count = parse_int(&buf[1..cr])
                    .filter(|&n| n <= i64::from(i32::MAX) && n <= clamp(limits.max_multibulk_len))
                    .ok_or(DecodeError::InvalidMultibulkLength)?;
                if !self.authenticated && count > clamp(limits.unauthenticated_multibulk_len) {
                    return Err(DecodeError::UnauthenticatedMultibulkLength);
                }
                if count <= 0 {
                    let _ = buf.split_to(cr + 2);
                    self.reset();
                    return Ok(Some(Vec::new()));
                }
                self.pos = cr + 2;
                let count = count as u64;
                self.args.reserve(PREALLOC_ARGS.min(count as usize));
                count
            }
        };
        self.remaining = Some(remaining);
        for _ in 0..remaining {
            let start = self.pos;
            let Some(cr) = self.line_end(buf, DecodeError::TooBigBulkCountString)? else {
                return Ok(None);
            };
            if buf[start] != b'$' {
                return Err(DecodeError::ExpectedBulk(buf[start]));
            }
            let len = parse_int(&buf[start + 1..cr])
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
                self.searched = cr - start - 1;
                return Ok(None);
            }
            self.args.push(data..end);
            // Redis skips the two bytes after the payload without looking.
            self.pos = end + 2;
            self.searched = 0;
            self.remaining = Some(self.remaining.unwrap_or(1) - 1);
        }
        let bytes = buf.split_to(self.pos).freeze();
        let args = self.args.iter().map(|r| bytes.slice(r.clone())).collect();
        self.reset();
        Ok(Some(args))
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

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use bytes::BufMut;

    use super::*;

    fn args(list: &[&[u8]]) -> Vec<Bytes> {
        list.iter().map(|a| Bytes::copy_from_slice(a)).collect()
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

    #[test]
    fn multibulk_arguments_share_the_buffer() {
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"[..]);
        let base = buf.as_ptr() as usize;
        let args = RequestDecoder::new().decode(&mut buf).unwrap().unwrap();
        assert_eq!(args[1].as_ptr() as usize, base + 17);
    }
}

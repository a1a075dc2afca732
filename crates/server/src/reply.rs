//! Writing replies straight into a connection's output buffer.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes};
use resp::Protocol;
use transport::Output;

/// `bytes` quoted as Redis's `sdscatrepr` quotes: printable ASCII as is,
/// `\\` and `"` escaped, the usual control characters by their letter,
/// anything else as `\xNN` (MONITOR's lines, the AOF manifest's names).
pub(crate) fn repr(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            7 => out.push_str("\\a"),
            8 => out.push_str("\\b"),
            b' '..=b'~' => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
}

/// Appends replies in the client's protocol.
#[derive(Debug)]
pub(crate) struct Reply<'a> {
    pub(crate) out: &'a mut Output,
    pub(crate) proto: Protocol,
}

impl Reply<'_> {
    pub(crate) fn ok(&mut self) {
        self.out.put_slice(b"+OK\r\n");
    }

    pub(crate) fn simple(&mut self, s: &str) {
        resp::write_simple(self.out, s.as_bytes());
    }

    pub(crate) fn error(&mut self, e: impl AsRef<[u8]>) {
        resp::write_error(self.out, e.as_ref());
    }

    pub(crate) fn int(&mut self, i: i64) {
        resp::write_integer(self.out, i);
    }

    pub(crate) fn bulk(&mut self, b: &[u8]) {
        resp::write_bulk(self.out, b);
    }

    /// A bulk string the caller holds as [`Bytes`]: a large one is sent
    /// from its own memory rather than copied into the output.
    pub(crate) fn bulk_shared(&mut self, b: &Bytes) {
        if b.len() < Output::SHARE_FROM {
            return self.bulk(b);
        }
        resp::write_header(self.out, b'$', b.len());
        self.out.put_shared(b.clone());
        self.out.put_slice(b"\r\n");
    }

    /// A double as Redis 7.0's `addReplyDouble` writes it: a bulk string
    /// of its `%.17g` text in RESP2, a `,` double in RESP3 (`inf` and
    /// `-inf` spelled out in both).
    pub(crate) fn double(&mut self, d: f64) {
        let text = store::zset::format_score(d);
        match self.proto {
            Protocol::Resp2 => self.bulk(text.as_bytes()),
            _ => {
                self.out.put_slice(b",");
                self.out.put_slice(text.as_bytes());
                self.out.put_slice(b"\r\n");
            }
        }
    }

    /// The null reply: `$-1` in RESP2, `_` in RESP3.
    pub(crate) fn null(&mut self) {
        match self.proto {
            Protocol::Resp2 => self.out.put_slice(b"$-1\r\n"),
            _ => self.out.put_slice(b"_\r\n"),
        }
    }

    /// The null array: `*-1` in RESP2, `_` in RESP3.
    pub(crate) fn null_array(&mut self) {
        match self.proto {
            Protocol::Resp2 => self.out.put_slice(b"*-1\r\n"),
            _ => self.out.put_slice(b"_\r\n"),
        }
    }

    pub(crate) fn array(&mut self, len: usize) {
        resp::write_header(self.out, b'*', len);
    }

    /// A map of `len` pairs: flattened into an array in RESP2.
    pub(crate) fn map(&mut self, len: usize) {
        match self.proto {
            Protocol::Resp2 => resp::write_header(self.out, b'*', len * 2),
            _ => resp::write_header(self.out, b'%', len),
        }
    }

    /// A set: an array in RESP2.
    pub(crate) fn set(&mut self, len: usize) {
        match self.proto {
            Protocol::Resp2 => resp::write_header(self.out, b'*', len),
            _ => resp::write_header(self.out, b'~', len),
        }
    }

    /// A verbatim string (`=`) in RESP3, a bulk string in RESP2.
    pub(crate) fn verbatim(&mut self, text: &[u8]) {
        match self.proto {
            Protocol::Resp2 => self.bulk(text),
            _ => {
                resp::write_header(self.out, b'=', text.len() + 4);
                self.out.put_slice(b"txt:");
                self.out.put_slice(text);
                self.out.put_slice(b"\r\n");
            }
        }
    }
}

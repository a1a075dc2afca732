//! A cursor over a command's arguments, so every command reports arity,
//! syntax and number errors the same way.

use bytes::Bytes;
use resp::Request;
use store::value::{Form, KEEP_HANDLE, Str};

use crate::cmd::CmdError;

/// The arguments after the command name.
#[derive(Debug)]
pub(crate) struct Args<'a> {
    req: &'a Request,
    pos: usize,
}

impl<'a> Args<'a> {
    /// A cursor just after the command name.
    pub(crate) fn new(req: &'a Request) -> Self {
        Args { req, pos: 1 }
    }

    /// Arguments not yet taken.
    pub(crate) fn remaining(&self) -> usize {
        self.req.len().saturating_sub(self.pos)
    }

    /// The next argument, or a syntax error if there is none.
    pub(crate) fn next(&mut self) -> Result<&'a [u8], CmdError> {
        let arg = self.req.get(self.pos).ok_or(CmdError::Syntax)?;
        self.pos += 1;
        Ok(arg)
    }

    /// The next argument, if any.
    pub(crate) fn peek(&self) -> Option<&'a [u8]> {
        self.req.get(self.pos)
    }

    /// All remaining arguments.
    pub(crate) fn rest(&mut self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let req = self.req;
        let from = self.pos;
        self.pos = req.len();
        (from..req.len()).filter_map(move |i| req.get(i))
    }
}

/// An integer argument (`ERR value is not an integer or out of range`).
pub(crate) fn parse_i64(arg: &[u8]) -> Result<i64, CmdError> {
    resp::parse_int(arg).ok_or(CmdError::NotInteger)
}

/// A float argument as Redis's `getLongDoubleFromObject` reads it: no
/// spaces, no empty string, finite or `inf` spelled out.
pub(crate) fn parse_f64(arg: &[u8]) -> Result<f64, CmdError> {
    let text = std::str::from_utf8(arg).map_err(|_| CmdError::NotFloat)?;
    if text.is_empty()
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace)
    {
        return Err(CmdError::NotFloat);
    }
    let v: f64 = match text.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => text.parse().map_err(|_| CmdError::NotFloat)?,
    };
    if v.is_nan() {
        return Err(CmdError::NotFloat);
    }
    Ok(v)
}

/// Case-insensitive comparison of an argument with an ASCII keyword.
pub(crate) fn eq(arg: &[u8], keyword: &str) -> bool {
    arg.eq_ignore_ascii_case(keyword.as_bytes())
}

/// Arguments at least this long are stored as slices of the request that
/// carried them, like Redis's big-argument path; shorter ones are copied so
/// a stored value never pins a whole read buffer.
const SHARE_ABOVE: usize = KEEP_HANDLE;

/// The string to store for argument `i` of a request: inside the entry if
/// short, a slice of the request if very long, a copy otherwise.
pub(crate) fn stored_str(req: &Request, i: usize) -> Str {
    let arg = req.get(i).unwrap_or_default();
    if arg.len() < KEEP_HANDLE {
        Str::from_slice(arg, Form::Auto)
    } else {
        Str::new(stored_arg(req, i), Form::Auto)
    }
}

/// The bytes to store for argument `i` of a request.
pub(crate) fn stored_arg(req: &Request, i: usize) -> Bytes {
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

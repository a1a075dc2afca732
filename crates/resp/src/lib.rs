//! A RESP2/RESP3 codec with no I/O.
//!
//! `ember-resp` turns bytes into [`Frame`]s and frames into bytes, for
//! servers, clients, proxies and sniffers alike. It has no sockets, no
//! tokio and no clock: callers own the buffers and the I/O, and bring the
//! codec their bytes.
//!
//! - [`Decoder`] decodes every RESP2 and RESP3 type. It is resumable: after
//!   `Ok(None)` ("need more bytes") it remembers how far it got, so a frame
//!   that arrives in a thousand reads costs what it costs in one.
//! - [`RequestDecoder`] reads client requests exactly as Redis does:
//!   multibulk and inline commands, Redis's limits (including the tighter
//!   ones before authentication) and Redis's protocol error texts.
//! - Decoding is zero-copy: a decoded frame's strings are slices of the
//!   buffer they were read from ([`bytes::Bytes`]), never copies.
//! - Decoding is bounded ([`Limits`]): a header claiming a huge length is
//!   refused when it is read, and no allocation is ever sized by a claim.
//! - Encoding is synchronous into a [`bytes::BytesMut`]: [`Frame::encode`],
//!   [`Frame::encode_as`] for RESP2 clients, and [`encode_command`] to write
//!   a command straight from argument slices.
//!
//! What it does not do: read or write sockets, buffer output, or know any
//! command's meaning. The tokio `Decoder`/`Encoder` adapter lives in
//! `ember-transport`.
//!
//! ```
//! use bytes::BytesMut;
//! use ember_resp::{encode_command, Decoder, Frame};
//!
//! let mut wire = BytesMut::new();
//! encode_command(&mut wire, &["SET", "greeting", "hello"]);
//!
//! let mut decoder = Decoder::new();
//! let frame = decoder.decode(&mut wire).unwrap().unwrap();
//! assert_eq!(frame, Frame::command(["SET", "greeting", "hello"]));
//! assert!(wire.is_empty());
//! ```
#![warn(missing_docs)]

mod decode;
mod encode;
mod error;
mod frame;
mod inline;
mod limits;
mod parse;
mod raw;
mod request;
#[cfg(test)]
mod testing;

pub use decode::{Decoder, decode};
pub use encode::{
    Protocol, encode_command, write_bulk, write_error, write_header, write_integer, write_simple,
};
pub use error::DecodeError;
pub use frame::Frame;
pub use inline::split_args;
pub use limits::Limits;
pub use parse::parse_int;
pub use raw::{Elements, ElementsIter, FrameRef, RawFrame};
pub use request::{BIG_ARG, Request, RequestDecoder};

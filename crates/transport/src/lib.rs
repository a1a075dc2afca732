//! Ember's tokio layer, shared by the server and the client.
//!
//! - [`Connection`]: a RESP connection over any byte stream, with one read
//!   buffer reused across reads and one write buffer that collects the
//!   replies to a pipelined batch so they leave in as few writes as
//!   possible. Output is bounded: a peer that does not read its replies is
//!   cut off instead of growing the buffer forever.
//! - [`Output`]: that write buffer, which also queues large shared values
//!   by reference so a 100 MB reply is sent without being copied.
//! - [`RespCodec`] and [`RequestCodec`]: the `tokio_util::codec` adapters
//!   for `ember-resp`, for code that prefers `Framed`.
//! - [`Shutdown`]: graceful shutdown from a `CancellationToken` and a
//!   `TaskTracker`: stop accepting, let every task finish, then return.
//!
//! This crate knows nothing of commands or routing: it moves frames.
#![warn(missing_docs)]

mod codec;
mod connection;
mod error;
mod output;
mod shutdown;

pub use codec::{RequestCodec, RespCodec};
pub use connection::{Connection, ConnectionLimits, Flushed};
pub use error::TransportError;
pub use output::Output;
pub use shutdown::Shutdown;

//! The transport's error type.

use std::io;

/// Why a connection could not go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The peer sent bytes that are not RESP; the stream is out of step.
    #[error("protocol error: {0}")]
    Protocol(#[from] resp::DecodeError),
    /// The peer let more unread output pile up than the limit allows.
    #[error("output buffer limit of {limit} bytes exceeded")]
    OutputLimit {
        /// The limit, in bytes.
        limit: usize,
    },
}

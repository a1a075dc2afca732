//! Bounds on what a decoder accepts.

/// The limits a decoder enforces, with Redis's defaults.
///
/// Each limit is checked against a header as soon as the header is read, so
/// a length that merely claims to be huge is refused before any byte of the
/// payload arrives, and nothing is ever allocated from a claimed length.
///
/// ```
/// let mut limits = ember_resp::Limits::default();
/// limits.max_bulk_len = 1024 * 1024; // like `CONFIG SET proto-max-bulk-len 1mb`
/// let decoder = ember_resp::Decoder::with_limits(limits);
/// # let _ = decoder;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest bulk string, bulk error or verbatim string, in bytes
    /// (Redis's `proto-max-bulk-len`, 512 MiB by default).
    pub max_bulk_len: u64,
    /// Most elements in one aggregate (Redis accepts up to 2^31 - 1 arguments
    /// in one request). A map of `n` pairs counts as `n`.
    pub max_multibulk_len: u64,
    /// Deepest nesting of aggregates; a flat array has depth 1. Clamped to
    /// [`Limits::MAX_DEPTH`]. Requests never nest.
    pub max_depth: usize,
    /// Longest inline request, and longest line of any kind (a header, a
    /// simple string), before its line end arrives: Redis's
    /// `PROTO_INLINE_MAX_SIZE`, 64 KiB.
    pub max_inline_len: usize,
    /// Most arguments in one request before the client has authenticated
    /// (10 in Redis).
    pub unauthenticated_multibulk_len: u64,
    /// Longest bulk argument before the client has authenticated (16 KiB in
    /// Redis).
    pub unauthenticated_bulk_len: u64,
}

impl Limits {
    /// The highest [`Limits::max_depth`] honoured. Decoding, encoding and
    /// dropping a frame recurse once per level, so the depth stays well
    /// inside a thread's stack.
    pub const MAX_DEPTH: usize = 512;

    /// Redis's `proto-max-bulk-len` default: 512 MiB.
    pub const DEFAULT_MAX_BULK_LEN: u64 = 512 * 1024 * 1024;

    /// Redis's `PROTO_INLINE_MAX_SIZE`: 64 KiB.
    pub const DEFAULT_MAX_INLINE_LEN: usize = 64 * 1024;

    pub(crate) fn depth(&self) -> usize {
        self.max_depth.min(Self::MAX_DEPTH)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: Self::DEFAULT_MAX_BULK_LEN,
            max_multibulk_len: i32::MAX as u64,
            max_depth: 128,
            max_inline_len: Self::DEFAULT_MAX_INLINE_LEN,
            unauthenticated_multibulk_len: 10,
            unauthenticated_bulk_len: 16 * 1024,
        }
    }
}

//! A connection's output: a buffer that replies are written into, and
//! large values sent from where they already are.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};

use bytes::{Bytes, BytesMut};

/// Bytes waiting to be sent, in order.
///
/// Most replies are small and are written straight into the buffer this
/// type dereferences to. A large value the caller already holds as
/// [`Bytes`] (a stored 100 MB string, say) goes in with
/// [`Output::put_shared`] instead: it is queued by reference and written to
/// the socket from its own memory, neither copied nor reallocated into the
/// buffer.
#[derive(Debug, Default)]
pub struct Output {
    /// Pieces that precede `buf`: frozen earlier parts of the buffer and
    /// shared values, in sending order.
    queue: VecDeque<Bytes>,
    queued: usize,
    buf: BytesMut,
    /// Part of the buffer was sent, the rest not: its `capacity` no longer
    /// tells the room it holds, so [`Output::clear`] lets it go.
    advanced: bool,
}

impl Output {
    /// Values at least this long are queued by reference by
    /// [`Output::put_shared`]; shorter ones are cheaper to copy.
    pub const SHARE_FROM: usize = 64 * 1024;

    /// An empty output.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `bytes`, by reference if it is large.
    pub fn put_shared(&mut self, bytes: Bytes) {
        if bytes.len() < Self::SHARE_FROM {
            self.buf.extend_from_slice(&bytes);
            return;
        }
        if !self.buf.is_empty() {
            let head = self.buf.split().freeze();
            self.queued += head.len();
            self.queue.push_back(head);
        }
        self.queued += bytes.len();
        self.queue.push_back(bytes);
    }

    /// Appends everything in `other`, keeping its shared pieces shared.
    pub fn append(&mut self, other: Output) {
        for piece in other.queue {
            self.put_shared(piece);
        }
        self.buf.extend_from_slice(&other.buf);
    }

    /// Bytes waiting, shared pieces included.
    pub fn len(&self) -> usize {
        self.queued + self.buf.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Of [`Output::len`], the bytes in pieces queued ahead of the buffer
    /// (shared values and the buffer's frozen earlier parts).
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// How many pieces are queued ahead of the buffer.
    pub fn pieces(&self) -> usize {
        self.queue.len()
    }

    /// Takes the next piece to send: queued pieces first, then the buffer.
    /// `None` when empty. The buffer keeps its allocation for reuse.
    pub(crate) fn next_piece(&mut self) -> Option<Piece<'_>> {
        if let Some(piece) = self.queue.pop_front() {
            self.queued -= piece.len();
            return Some(Piece::Shared(piece));
        }
        (!self.buf.is_empty()).then_some(Piece::Buffer(&mut self.buf))
    }

    /// The bytes to send next: the first queued piece, else the buffer.
    /// `None` when nothing waits.
    pub(crate) fn front(&self) -> Option<&[u8]> {
        match self.queue.front() {
            Some(piece) => Some(piece),
            None => (!self.buf.is_empty()).then_some(&self.buf[..]),
        }
    }

    /// Drops the first `n` bytes of [`Output::front`]: the socket took
    /// them. What remains stays in order, so a send cut short by a
    /// cancelled wait loses nothing.
    pub(crate) fn advance(&mut self, n: usize) {
        use bytes::Buf;
        match self.queue.front_mut() {
            Some(piece) => {
                piece.advance(n);
                self.queued -= n;
                if piece.is_empty() {
                    self.queue.pop_front();
                }
            }
            // All of it sent: the buffer keeps its whole room for reuse
            // (an advance would hide the sent part's room from
            // `capacity`, and `clear` would keep a large buffer).
            None if n == self.buf.len() => self.buf.clear(),
            None => {
                self.buf.advance(n);
                self.advanced = true;
            }
        }
    }

    /// Everything waiting, in order, as pieces: shared values stay the
    /// memory they were queued as (an in-process caller, such as the gRPC
    /// side of a server, takes replies without copying large values).
    pub fn into_pieces(mut self) -> Vec<Bytes> {
        let mut pieces: Vec<Bytes> = self.queue.drain(..).collect();
        if !self.buf.is_empty() {
            pieces.push(self.buf.split().freeze());
        }
        pieces
    }

    /// Drops everything waiting; gives back a large buffer's memory.
    pub(crate) fn clear(&mut self, keep_capacity: usize) {
        self.queue.clear();
        self.queued = 0;
        self.buf.clear();
        if self.buf.capacity() > keep_capacity || self.advanced {
            self.buf = BytesMut::new();
            self.advanced = false;
        }
    }
}

/// One piece of output to write.
#[derive(Debug)]
pub(crate) enum Piece<'a> {
    Shared(Bytes),
    Buffer(&'a mut BytesMut),
}

impl Deref for Output {
    type Target = BytesMut;

    fn deref(&self) -> &BytesMut {
        &self.buf
    }
}

impl DerefMut for Output {
    fn deref_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(out: &mut Output) -> Vec<u8> {
        let mut sent = Vec::new();
        while let Some(piece) = out.next_piece() {
            match piece {
                Piece::Shared(b) => sent.extend_from_slice(&b),
                Piece::Buffer(b) => {
                    sent.extend_from_slice(b);
                    b.clear();
                }
            }
        }
        sent
    }

    #[test]
    fn a_send_in_steps_keeps_the_order() {
        let big = Bytes::from(vec![7u8; Output::SHARE_FROM]);
        let mut out = Output::new();
        out.extend_from_slice(b"head");
        out.put_shared(big.clone());
        out.extend_from_slice(b"tail");
        let mut want = b"head".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"tail");
        let mut sent = Vec::new();
        // Three bytes at a time, as a socket short of room takes them.
        while let Some(front) = out.front() {
            let n = front.len().min(3);
            sent.extend_from_slice(&front[..n]);
            out.advance(n);
            assert_eq!(out.len(), want.len() - sent.len());
        }
        assert_eq!(sent, want);
        assert!(out.is_empty());
    }

    #[test]
    fn pieces_keep_shared_values_in_order() {
        let big = Bytes::from(vec![7u8; Output::SHARE_FROM]);
        let mut out = Output::new();
        out.extend_from_slice(b"$65536\r\n");
        out.put_shared(big.clone());
        out.extend_from_slice(b"\r\n");
        let pieces = out.into_pieces();
        assert_eq!(pieces.len(), 3);
        assert_eq!(&pieces[0][..], b"$65536\r\n");
        assert_eq!(pieces[1].as_ptr(), big.as_ptr());
        assert_eq!(&pieces[2][..], b"\r\n");
        assert!(Output::new().into_pieces().is_empty());
    }

    #[test]
    fn large_values_are_queued_in_order_and_small_ones_copied() {
        let big = Bytes::from(vec![7u8; Output::SHARE_FROM]);
        let mut out = Output::new();
        out.extend_from_slice(b"$65536\r\n");
        out.put_shared(big.clone());
        out.extend_from_slice(b"\r\n:1\r\n");
        out.put_shared(Bytes::from_static(b"small"));
        assert_eq!(out.len(), 8 + big.len() + 6 + 5);
        // The big value was not copied: the queue holds the same memory.
        assert!(out.queue.iter().any(|p| p.as_ptr() == big.as_ptr()));

        let mut other = Output::new();
        other.extend_from_slice(b"+OK\r\n");
        other.put_shared(big.clone());
        out.append(other);

        let mut want = b"$65536\r\n".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"\r\n:1\r\nsmall+OK\r\n");
        want.extend_from_slice(&big);
        assert_eq!(drain(&mut out), want);
        assert!(out.is_empty());
    }
}

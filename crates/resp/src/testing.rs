//! Helpers for this crate's tests.

use bytes::{BufMut, BytesMut};
use proptest::sample::Index;

/// Feeds `wire` into one buffer in pieces cut at `cuts` (chosen among its
/// positions), calling `next` after each piece until it yields nothing.
/// Returns all it yielded and the bytes left in the buffer.
pub(crate) fn in_pieces<T>(
    wire: &[u8],
    cuts: &[Index],
    mut next: impl FnMut(&mut BytesMut) -> Option<T>,
) -> (Vec<T>, BytesMut) {
    let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
    cuts.push(wire.len());
    cuts.sort_unstable();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut fed = 0;
    for cut in cuts {
        buf.put_slice(&wire[fed..cut]);
        fed = cut;
        while let Some(item) = next(&mut buf) {
            got.push(item);
        }
    }
    (got, buf)
}

//! LZF, the compression of RDB strings (Marc Lehmann's liblzf, which Redis
//! vendors).
//!
//! Our own code rather than a crate: the only LZF crate (`lzf`) is
//! deprecated, and the format is three instructions:
//!
//! ```text
//! 000LLLLL <L+1 bytes>          literal run of 1..=32 bytes
//! LLLooooo oooooooo             copy L+2 (3..=8) bytes from o+1 back
//! 111ooooo LLLLLLLL oooooooo    copy L+9 (9..=264) bytes from o+1 back
//! ```
//!
//! Decompression checks every read and every back reference and never
//! produces more than the length announced. Compression is a greedy
//! matcher over a hash of three bytes, as liblzf's: its output differs from
//! liblzf's byte for byte, but any LZF decoder reads it.

/// The longest literal run.
const MAX_LIT: usize = 32;
/// The farthest back a reference reaches.
const MAX_OFF: usize = 1 << 13;
/// The longest copy.
const MAX_REF: usize = (1 << 8) + (1 << 3);
/// The most output one input byte can produce (a three-byte reference
/// copies 264 bytes), so longer claims are corrupt without looking.
const MAX_RATIO: usize = MAX_REF / 3;

/// Decompresses `input`, which must produce exactly `out_len` bytes.
pub fn decompress(input: &[u8], out_len: usize) -> Result<Vec<u8>, &'static str> {
    if out_len > input.len().saturating_mul(MAX_RATIO) {
        return Err("LZF length larger than its data can produce");
    }
    let mut out = Vec::with_capacity(out_len);
    let mut i = 0;
    while let Some(&ctrl) = input.get(i) {
        i += 1;
        let ctrl = usize::from(ctrl);
        if ctrl < 32 {
            let n = ctrl + 1;
            let run = input
                .get(i..i + n)
                .ok_or("LZF literal run past the end of the data")?;
            if out.len() + n > out_len {
                return Err("LZF data longer than announced");
            }
            out.extend_from_slice(run);
            i += n;
            continue;
        }
        let mut len = ctrl >> 5;
        if len == 7 {
            len += usize::from(*input.get(i).ok_or("LZF reference cut short")?);
            i += 1;
        }
        let low = usize::from(*input.get(i).ok_or("LZF reference cut short")?);
        i += 1;
        let back = ((ctrl & 0x1f) << 8) + low + 1;
        let len = len + 2;
        if back > out.len() {
            return Err("LZF reference before the start of the data");
        }
        if out.len() + len > out_len {
            return Err("LZF data longer than announced");
        }
        let start = out.len() - back;
        if back >= len {
            out.extend_from_within(start..start + len);
        } else {
            // Overlapping: the copy reads bytes it has just written.
            for k in start..start + len {
                out.push(out[k]);
            }
        }
    }
    if out.len() != out_len {
        return Err("LZF data shorter than announced");
    }
    Ok(out)
}

/// Compresses `input` into at most `max_out` bytes, or `None` if it does
/// not fit (or `input` is empty).
pub fn compress(input: &[u8], max_out: usize) -> Option<Vec<u8>> {
    let n = input.len();
    if n == 0 || max_out == 0 {
        return None;
    }
    // A table sized to the input: a short string should not pay for
    // clearing a big one.
    let bits = (usize::BITS - n.leading_zeros()).clamp(6, 14);
    let mut table = vec![0usize; 1 << bits];
    let hash = |i: usize| {
        let v = u32::from(input[i]) << 16 | u32::from(input[i + 1]) << 8 | u32::from(input[i + 2]);
        (v.wrapping_mul(0x9E37_79B1) >> (32 - bits)) as usize
    };
    let mut out = Vec::with_capacity(max_out.min(n));
    let mut literals = 0;
    let mut i = 0;
    while i + 2 < n {
        let h = hash(i);
        // Positions are stored plus one, so 0 means none.
        let candidate = std::mem::replace(&mut table[h], i + 1);
        if candidate > 0 {
            let r = candidate - 1;
            let off = i - r - 1;
            if off < MAX_OFF && input[r..r + 3] == input[i..i + 3] {
                let max = (n - i).min(MAX_REF);
                let mut len = 3;
                while len < max && input[r + len] == input[i + len] {
                    len += 1;
                }
                push_literals(&mut out, &input[literals..i], max_out)?;
                let l = len - 2;
                let high = (off >> 8) as u8;
                if l < 7 {
                    out.push(high | (l as u8) << 5);
                } else {
                    out.push(high | 7 << 5);
                    out.push((l - 7) as u8);
                }
                out.push(off as u8);
                if out.len() > max_out {
                    return None;
                }
                // Index the positions the match covers: later matches find
                // them.
                let end = i + len;
                for j in i + 1..end.min(n - 2) {
                    table[hash(j)] = j + 1;
                }
                i = end;
                literals = end;
                continue;
            }
        }
        i += 1;
    }
    push_literals(&mut out, &input[literals..], max_out)?;
    Some(out)
}

/// Appends `bytes` as literal runs.
fn push_literals(out: &mut Vec<u8>, bytes: &[u8], max_out: usize) -> Option<()> {
    for run in bytes.chunks(MAX_LIT) {
        if out.len() + 1 + run.len() > max_out {
            return None;
        }
        out.push((run.len() - 1) as u8);
        out.extend_from_slice(run);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(data: &[u8]) {
        let packed = compress(data, data.len() + data.len() / 32 + 2).expect("fits");
        assert_eq!(decompress(&packed, data.len()).as_deref(), Ok(data));
    }

    #[test]
    fn round_trips() {
        round_trip(b"a");
        round_trip(b"ab");
        round_trip(b"abc");
        round_trip(&[b'a'; 1000]);
        round_trip(b"hello hello hello hello hello world");
        let text: Vec<u8> = (0..100_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 7) as u8)
            .collect();
        round_trip(&text);
        let mut rng = crate::Rng::new(11);
        let noise: Vec<u8> = (0..10_000).map(|_| rng.next_u64() as u8).collect();
        round_trip(&noise);
    }

    #[test]
    fn repetitive_data_shrinks_and_noise_does_not_fit() {
        let data = vec![b'x'; 10_000];
        let packed = compress(&data, data.len() - 4).expect("compressible");
        assert!(packed.len() < 200, "{}", packed.len());
        let mut rng = crate::Rng::new(3);
        let noise: Vec<u8> = (0..1_000).map(|_| rng.next_u64() as u8).collect();
        assert_eq!(compress(&noise, noise.len() - 4), None);
        assert_eq!(compress(b"", 10), None);
    }

    #[test]
    fn overlapping_long_reference() {
        // 52 a's: a literal "a", then a copy of 51 bytes from one back,
        // in the three-byte form.
        let packed = [0x00, b'a', 0xE0, 51 - 2 - 7, 0x00];
        assert_eq!(decompress(&packed, 52), Ok(vec![b'a'; 52]));
    }

    #[test]
    fn corrupt_input_is_an_error() {
        // A reference with nothing before it.
        assert!(decompress(&[0x20, 0x00], 3).is_err());
        // A literal run cut short.
        assert!(decompress(&[0x05, b'a', b'b'], 6).is_err());
        // A reference cut short.
        assert!(decompress(&[0x00, b'a', 0xE0], 20).is_err());
        assert!(decompress(&[0x00, b'a', 0x20], 4).is_err());
        // Lengths that disagree with the data.
        assert!(decompress(&[0x00, b'a'], 2).is_err());
        assert!(decompress(&[0x01, b'a', b'b'], 1).is_err());
        assert!(decompress(&[0x00, b'a', 0x20, 0x00], 3).is_err());
        // A claim no data of that size can back: refused before allocating.
        assert!(decompress(&[0x00, b'a'], usize::MAX).is_err());
        assert!(decompress(&[], 0).is_ok());
    }

    proptest! {
        #[test]
        fn compress_round_trips(data in proptest::collection::vec(0u8..4, 0..3000)) {
            if let Some(packed) = compress(&data, data.len() + 64) {
                prop_assert_eq!(decompress(&packed, data.len()), Ok(data.clone()));
            } else {
                prop_assert!(data.is_empty());
            }
        }

        #[test]
        fn decompress_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200), len in 0usize..2000) {
            let _ = decompress(&data, len);
        }
    }
}

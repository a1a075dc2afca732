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
//! produces more than the length announced. Compression is liblzf's own
//! greedy matcher, step for step as Redis builds it (a 2^16-slot table of
//! three-byte hashes, `VERY_FAST`), so that what Redis compresses, and how,
//! comes out the same here: DUMP payloads and RDB strings are Redis's to
//! the byte.

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

/// liblzf's hash table: 2^16 slots (Redis builds it with `HLOG 16`).
const HSIZE: usize = 1 << 16;

/// Bits of a table slot that hold a position; the rest hold the stamp of
/// the call that wrote it.
const POS_BITS: u32 = 40;

/// A table kept from call to call, so that a short string does not pay for
/// clearing 2^16 slots: a slot counts only if it carries the current call's
/// stamp, which is what a cleared table would give.
struct Table {
    slots: Vec<u64>,
    stamp: u64,
}

thread_local! {
    static TABLE: std::cell::RefCell<Table> = const {
        std::cell::RefCell::new(Table {
            slots: Vec::new(),
            stamp: 0,
        })
    };
}

/// Frees this thread's table (512 KB), for a thread that compressed a
/// snapshot and may stay idle for long: tokio's blocking threads linger
/// 10 s, and the table would be `used_memory` freed at an arbitrary
/// moment. The next call on the thread makes it again.
pub fn release_table() {
    TABLE.with(|t| {
        if let Ok(mut t) = t.try_borrow_mut() {
            t.slots = Vec::new();
        }
    });
}

/// Compresses `input` into at most `max_out` bytes, or `None` if it does
/// not fit (or `input` is empty), with liblzf's algorithm as Redis builds
/// it (`lzf_c.c` with `HLOG 16`, `VERY_FAST`), so that the output, and
/// whether there is one, are Redis's to the byte: RDB strings and DUMP
/// payloads (a compressible intset, a long string) come out as Redis
/// writes them. liblzf gives up early at its own conservative checks
/// against `max_out`; so does this.
pub fn compress(input: &[u8], max_out: usize) -> Option<Vec<u8>> {
    TABLE.with(|t| compress_with(&mut t.borrow_mut(), input, max_out))
}

fn compress_with(table: &mut Table, input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let in_len = input.len();
    if in_len == 0 || out_len == 0 {
        return None;
    }
    if table.slots.is_empty() {
        table.slots = vec![0; HSIZE];
    }
    table.stamp += 1;
    if table.stamp >= 1 << (64 - POS_BITS) {
        table.slots.fill(0);
        table.stamp = 1;
    }
    let stamp = table.stamp << POS_BITS;
    // liblzf's IDX of the three bytes at `i`, VERY_FAST flavour.
    let idx = |i: usize| {
        let h = u32::from(input[i]) << 16 | u32::from(input[i + 1]) << 8 | u32::from(input[i + 2]);
        ((h >> 8).wrapping_sub(h.wrapping_mul(5)) & (HSIZE as u32 - 1)) as usize
    };
    let pos_mask = (1u64 << POS_BITS) - 1;
    // liblzf writes at `op` and checks against `out_len` itself; the slack
    // covers the few bytes it may step past before a check returns.
    let mut out = vec![0u8; out_len + 8];
    let (mut ip, mut op, mut lit) = (0usize, 1usize, 0usize);
    while ip + 2 < in_len {
        let slot = &mut table.slots[idx(ip)];
        let previous = (*slot & !pos_mask == stamp).then_some((*slot & pos_mask) as usize);
        *slot = stamp | ip as u64;
        let matched = previous.filter(|&r| {
            r > 0
                && r < ip
                && ip - r - 1 < MAX_OFF
                && input[r + 2] == input[ip + 2]
                && input[r..r + 2] == input[ip..ip + 2]
        });
        let Some(r) = matched else {
            // One more literal byte.
            if op >= out_len {
                return None;
            }
            lit += 1;
            out[op] = input[ip];
            op += 1;
            ip += 1;
            if lit == MAX_LIT {
                out[op - lit - 1] = (lit - 1) as u8;
                lit = 0;
                op += 1;
            }
            continue;
        };
        let off = ip - r - 1;
        let mut len = 2;
        let maxlen = (in_len - ip - len).min(MAX_REF);
        if op + 3 + 1 >= out_len && op - usize::from(lit == 0) + 3 + 1 >= out_len {
            return None;
        }
        // End the literal run (dropping its header if it is empty).
        out[op - lit - 1] = (lit as u8).wrapping_sub(1);
        op -= usize::from(lit == 0);
        // liblzf compares 16 bytes unchecked when more than 16 may match,
        // then one at a time up to `maxlen`.
        'length: {
            if maxlen > 16 {
                for _ in 0..16 {
                    len += 1;
                    if input[r + len] != input[ip + len] {
                        break 'length;
                    }
                }
            }
            loop {
                len += 1;
                if !(len < maxlen && input[r + len] == input[ip + len]) {
                    break;
                }
            }
        }
        // `len` is now the length of the copy minus two.
        len -= 2;
        ip += 1;
        if len < 7 {
            out[op] = ((off >> 8) + (len << 5)) as u8;
            op += 1;
        } else {
            out[op] = ((off >> 8) + (7 << 5)) as u8;
            out[op + 1] = (len - 7) as u8;
            op += 2;
        }
        out[op] = off as u8;
        op += 2;
        lit = 0;
        ip += len + 1;
        if ip + 2 >= in_len {
            break;
        }
        // Index the last two positions the copy covered.
        for at in [ip - 2, ip - 1] {
            table.slots[idx(at)] = stamp | at as u64;
        }
    }
    // At most three bytes can be missing here.
    if op + 3 > out_len {
        return None;
    }
    while ip < in_len {
        lit += 1;
        out[op] = input[ip];
        op += 1;
        ip += 1;
        if lit == MAX_LIT {
            out[op - lit - 1] = (lit - 1) as u8;
            lit = 0;
            op += 1;
        }
    }
    out[op - lit - 1] = (lit as u8).wrapping_sub(1);
    op -= usize::from(lit == 0);
    out.truncate(op);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(data: &[u8]) {
        // liblzf's own slack: a run header per 32 literals, and 3 bytes
        // its final check wants free.
        let packed = compress(data, data.len() + data.len() / 32 + 4).expect("fits");
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

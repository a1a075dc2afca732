//! Zipmaps: the small hashes of Redis 2.4 and older (RDB type 9). Read
//! only.
//!
//! ```text
//! <count: 1 byte, 254 = unknown> (<len> field <len> <free> value <free bytes>)... <0xFF>
//! len = 1 byte below 254, or 254 and a u32 LE
//! ```

const BIGLEN: u8 = 254;
const END: u8 = 0xFF;

/// A field and its value.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

/// The field-value pairs of `zm`, checked as Redis's deep validation
/// (`zipmapValidateIntegrity`) checks them.
pub fn decode(zm: &[u8]) -> Result<Vec<Pair<'_>>, &'static str> {
    const PAST: &str = "zipmap entry runs past the end";
    if zm.len() < 2 {
        return Err("zipmap shorter than its header");
    }
    let end = zm.len() - 1;
    if zm[end] != END {
        return Err("zipmap does not end with its terminator");
    }
    // A length at `p`: its value and the bytes it takes.
    let len_at = |p: usize| -> Result<(usize, usize), &'static str> {
        match zm[p] {
            BIGLEN => {
                let b = zm.get(p + 1..p + 5).filter(|_| p + 5 <= end).ok_or(PAST)?;
                Ok((u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 5))
            }
            n => Ok((usize::from(n), 1)),
        }
    };
    let mut pairs = Vec::new();
    let mut p = 1;
    while zm[p] != END {
        let (n, size) = len_at(p)?;
        let field_at = p + size;
        let v = field_at.checked_add(n).filter(|&v| v < end).ok_or(PAST)?;
        let (m, size) = len_at(v)?;
        let free_at = v + size;
        if free_at >= end {
            return Err(PAST);
        }
        let value_at = free_at + 1;
        let next = value_at
            .checked_add(m)
            .and_then(|n| n.checked_add(usize::from(zm[free_at])))
            .filter(|&n| n <= end)
            .ok_or(PAST)?;
        pairs.push((&zm[field_at..field_at + n], &zm[value_at..value_at + m]));
        p = next;
    }
    if pairs.is_empty() {
        return Err("zipmap is empty");
    }
    if zm[0] != BIGLEN && usize::from(zm[0]) != pairs.len() {
        return Err("zipmap count does not match its entries");
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_made_zipmap() {
        // {"foo" => "bar", "hello" => "world"}, the second with 2 free bytes.
        let zm = b"\x02\x03foo\x03\x00bar\x05hello\x05\x02world..\xff";
        assert_eq!(
            decode(zm),
            Ok(vec![(&b"foo"[..], &b"bar"[..]), (b"hello", b"world")])
        );
        let mut big = vec![1u8, 254, 44, 1, 0, 0];
        big.extend_from_slice(&[b'f'; 300]);
        big.extend_from_slice(&[1, 0, b'v', 0xFF]);
        assert_eq!(decode(&big), Ok(vec![(&[b'f'; 300][..], &b"v"[..])]));
    }

    #[test]
    fn corrupt_zipmaps_are_errors() {
        let good = b"\x01\x03foo\x03\x00bar\xff".to_vec();
        assert!(decode(&good).is_ok());
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err());
        }
        for i in 0..good.len() {
            for b in [0, 1, 50, 253, 254, 255] {
                let mut bad = good.clone();
                bad[i] = b;
                let _ = decode(&bad);
            }
        }
        assert!(decode(b"\x00\xff").is_err());
        assert!(decode(b"\x02\x03foo\x03\x00bar\xff").is_err());
        assert!(decode(b"\x01\x03foo\x03\x09bar\xff").is_err());
    }
}

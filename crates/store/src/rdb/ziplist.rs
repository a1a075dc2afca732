//! Ziplists: the packed lists of RDB files before version 10 (list nodes of
//! type 14, and types 10, 12 and 13). Read only: Redis 7.0 no longer writes
//! them.
//!
//! ```text
//! <total bytes: u32 LE> <offset of the last entry: u32 LE> <count: u16 LE> <entry>... <0xFF>
//! entry = <prevlen: 1 byte, or 0xFE and a u32 LE> <encoding> <data>
//! ```
//!
//! Decoding checks what Redis's deep validation
//! (`ziplistValidateIntegrity`) checks.

use super::listpack::Item;

const HEADER: usize = 10;
const END: u8 = 0xFF;
/// A prevlen byte that announces a 4-byte prevlen.
const BIG_PREVLEN: u8 = 0xFE;

/// Every element of `zl`, or what is wrong with it.
pub fn decode(zl: &[u8]) -> Result<Vec<Item<'_>>, &'static str> {
    if zl.len() < HEADER + 1 {
        return Err("ziplist shorter than its header");
    }
    let u32_at = |i: usize| u32::from_le_bytes([zl[i], zl[i + 1], zl[i + 2], zl[i + 3]]) as usize;
    if u32_at(0) != zl.len() {
        return Err("ziplist size header does not match its length");
    }
    let end = zl.len() - 1;
    if zl[end] != END {
        return Err("ziplist does not end with its terminator");
    }
    let tail = u32_at(4);
    if tail > end {
        return Err("ziplist tail offset is past its end");
    }
    let count = u16::from_le_bytes([zl[8], zl[9]]);
    let mut items = Vec::new();
    let mut p = HEADER;
    let mut prev: Option<usize> = None;
    let mut prev_size = 0;
    while zl[p] != END {
        let (item, size, prevlen) = entry(zl, p, end)?;
        if prevlen != prev_size {
            return Err("ziplist entry prevlen does not match the entry before it");
        }
        items.push(item);
        prev = Some(p);
        prev_size = size;
        p += size;
    }
    if p != end {
        return Err("ziplist entries do not reach its terminator");
    }
    if prev.is_some_and(|last| last != tail) {
        return Err("ziplist tail offset does not point at its last entry");
    }
    if count != u16::MAX && usize::from(count) != items.len() {
        return Err("ziplist count header does not match its entries");
    }
    Ok(items)
}

/// The entry at `p`: its element, its size and its prevlen. Every byte it
/// covers lies before `end`, the terminator.
fn entry(zl: &[u8], p: usize, end: usize) -> Result<(Item<'_>, usize, usize), &'static str> {
    const PAST: &str = "ziplist entry runs past the end";
    let get = |i: usize, n: usize| zl.get(i..i + n).filter(|_| i + n <= end).ok_or(PAST);
    let (prevlen_size, prevlen) = if zl[p] < BIG_PREVLEN {
        (1, usize::from(zl[p]))
    } else {
        let b = get(p + 1, 4)?;
        (5, u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let e = p + prevlen_size;
    let enc = get(e, 1)?[0];
    let (header, len, int): (usize, usize, Option<i64>) = match enc {
        0x00..=0x3F => (1, usize::from(enc & 0x3F), None),
        0x40..=0x7F => {
            let b = get(e + 1, 1)?[0];
            (2, usize::from(enc & 0x3F) << 8 | usize::from(b), None)
        }
        0x80..=0xBF => {
            let b = get(e + 1, 4)?;
            (
                5,
                u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize,
                None,
            )
        }
        _ => {
            let (n, value) = match enc {
                0xFE => (1, get(e + 1, 1)?[0] as i8 as i64),
                0xC0 => {
                    let b = get(e + 1, 2)?;
                    (2, i64::from(i16::from_le_bytes([b[0], b[1]])))
                }
                0xD0 => {
                    let b = get(e + 1, 4)?;
                    (4, i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                }
                0xE0 => {
                    let b = get(e + 1, 8)?;
                    (8, i64::from_le_bytes(b.try_into().map_err(|_| PAST)?))
                }
                0xF0 => {
                    // 24 bits, sign-extended through the top of an i32.
                    let b = get(e + 1, 3)?;
                    (3, i64::from(i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8))
                }
                0xF1..=0xFD => (0, i64::from(enc & 0x0F) - 1),
                _ => return Err("ziplist entry has an invalid encoding"),
            };
            (1, n, Some(value))
        }
    };
    let data = e + header;
    let size = prevlen_size + header + len;
    let item = match int {
        Some(v) => Item::Int(v),
        None => Item::Str(get(data, len)?),
    };
    // Integers were read in full above; a string's end is checked by `get`.
    if p + size > end {
        return Err(PAST);
    }
    Ok((item, size, prevlen))
}

/// A ziplist of `entries`, each already encoded (its encoding byte and
/// data, without the prevlen this adds): for tests, here and in the
/// server, that make files by hand. Redis 7.0 no longer writes ziplists.
pub fn build(entries: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut prev = 0usize;
    let mut tail = HEADER;
    for e in entries {
        tail = HEADER + body.len();
        if prev < 254 {
            body.push(prev as u8);
        } else {
            body.push(0xFE);
            body.extend_from_slice(&(prev as u32).to_le_bytes());
        }
        body.extend_from_slice(e);
        prev = HEADER + body.len() - tail;
    }
    let total = HEADER + body.len() + 1;
    let mut zl = Vec::new();
    zl.extend_from_slice(&(total as u32).to_le_bytes());
    zl.extend_from_slice(&(tail as u32).to_le_bytes());
    zl.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    zl.extend_from_slice(&body);
    zl.push(END);
    zl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_doc_example() {
        // From ziplist.c: "2" and "5" as immediate integers.
        let zl = [
            0x0f, 0, 0, 0, 0x0c, 0, 0, 0, 0x02, 0, 0x00, 0xf3, 0x02, 0xf6, 0xff,
        ];
        assert_eq!(decode(&zl), Ok(vec![Item::Int(2), Item::Int(5)]));
    }

    #[test]
    fn every_encoding() {
        let long = vec![b'y'; 300];
        let mut s14 = vec![0x41, 0x2C];
        s14.extend_from_slice(&long);
        let mut s32 = vec![0x80, 0, 0, 0x01, 0x2C];
        s32.extend_from_slice(&long);
        let zl = build(&[
            b"\x05hello",
            &s14,
            &s32,
            &[0xFE, 0x80],
            &[0xC0, 0x00, 0x80],
            &[0xF0, 0xFF, 0xFF, 0xFF],
            &[0xD0, 0x00, 0x00, 0x00, 0x80],
            &[0xE0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
            &[0xF1],
            &[0xFD],
            b"\x00",
        ]);
        assert_eq!(
            decode(&zl),
            Ok(vec![
                Item::Str(b"hello"),
                Item::Str(&long),
                Item::Str(&long),
                Item::Int(-128),
                Item::Int(-32768),
                Item::Int(-1),
                Item::Int(i64::from(i32::MIN)),
                Item::Int(i64::MAX),
                Item::Int(0),
                Item::Int(12),
                Item::Str(b""),
            ])
        );
    }

    #[test]
    fn corrupt_ziplists_are_errors() {
        let good = build(&[b"\x03abc", &[0xF5], &[0xFE, 7]]);
        assert!(decode(&good).is_ok());
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err(), "prefix {n}");
        }
        for i in 0..good.len() {
            for b in [0x00, 0x3F, 0x40, 0x80, 0xBF, 0xC0, 0xE0, 0xF0, 0xFE, 0xFF] {
                let mut bad = good.clone();
                bad[i] = b;
                let _ = decode(&bad);
            }
        }
        // Wrong count, tail, prevlen; an invalid encoding.
        let mut bad = good.clone();
        bad[8] = 5;
        assert!(decode(&bad).is_err());
        let mut bad = good.clone();
        bad[4] = 11;
        assert!(decode(&bad).is_err());
        let mut bad = good.clone();
        bad[HEADER + 5] = 9;
        assert!(decode(&bad).is_err());
        let bad = build(&[&[0xFF]]);
        assert!(decode(&bad).is_err());
        // A 32-bit string length far past the end.
        let bad = build(&[&[0x80, 0xFF, 0xFF, 0xFF, 0xFF, b'a']]);
        assert!(decode(&bad).is_err());
    }
}

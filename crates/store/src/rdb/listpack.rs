//! Listpacks: the packed lists inside quicklist nodes (and small hashes,
//! sorted sets and, from Redis 7.2, sets).
//!
//! ```text
//! <total bytes: u32 LE> <count: u16 LE> <entry>... <0xFF>
//! entry = <encoding + data> <backlen: the length of encoding + data, 1..=5 bytes>
//! ```
//!
//! Decoding checks what Redis's deep validation (`lpValidateIntegrity`)
//! checks: the total matches, every entry and its backlen lie inside, each
//! backlen agrees with its entry, the terminator ends it, and the count
//! matches unless it is 65535 ("unknown").

/// Header: total bytes and count.
const HEADER: usize = 6;
/// The terminator.
const END: u8 = 0xFF;
/// The count that means "too many to count here".
const COUNT_UNKNOWN: u16 = u16::MAX;

/// One element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    /// An integer-encoded element.
    Int(i64),
    /// A string element.
    Str(&'a [u8]),
}

impl<'a> Item<'a> {
    /// The element as the string it stands for.
    pub fn to_bytes(self) -> bytes::Bytes {
        match self {
            Item::Int(v) => bytes::Bytes::from(v.to_string()),
            Item::Str(s) => bytes::Bytes::copy_from_slice(s),
        }
    }

    /// The element as the string it stands for, borrowed when it is one.
    pub fn text(self) -> std::borrow::Cow<'a, [u8]> {
        match self {
            Item::Int(v) => std::borrow::Cow::Owned(v.to_string().into_bytes()),
            Item::Str(s) => std::borrow::Cow::Borrowed(s),
        }
    }
}

/// Every element of `lp`, or what is wrong with it.
pub fn decode(lp: &[u8]) -> Result<Vec<Item<'_>>, &'static str> {
    if lp.len() < HEADER + 1 {
        return Err("listpack shorter than its header");
    }
    let total = u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]) as usize;
    if total != lp.len() {
        return Err("listpack size header does not match its length");
    }
    if lp[lp.len() - 1] != END {
        return Err("listpack does not end with its terminator");
    }
    let count = u16::from_le_bytes([lp[4], lp[5]]);
    let end = lp.len() - 1;
    let mut items = Vec::new();
    let mut p = HEADER;
    while p < end {
        let (item, next) = entry(lp, p, end)?;
        items.push(item);
        p = next;
    }
    if lp[p] != END || p != end {
        return Err("listpack entries do not reach its terminator");
    }
    if count != COUNT_UNKNOWN && usize::from(count) != items.len() {
        return Err("listpack count header does not match its entries");
    }
    Ok(items)
}

/// The entry at `p` and where the next one starts; nothing it covers may
/// reach `end` (the terminator).
fn entry(lp: &[u8], p: usize, end: usize) -> Result<(Item<'_>, usize), &'static str> {
    const PAST: &str = "listpack entry runs past the end";
    let byte = |i: usize| -> Result<u64, &'static str> {
        if p + i < end {
            Ok(u64::from(lp[p + i]))
        } else {
            Err(PAST)
        }
    };
    // Unsigned little-endian integer of `n` bytes after the encoding byte.
    let uint = |n: usize| -> Result<u64, &'static str> {
        (0..n).try_fold(0u64, |v, i| Ok(v | byte(1 + i)? << (8 * i)))
    };
    // Two's complement in `bits`.
    let signed = |v: u64, bits: u32| -> i64 {
        if v >= 1 << (bits - 1) {
            v as i64 - (1i64 << (bits - 1)) * 2
        } else {
            v as i64
        }
    };
    let first = lp[p];
    let (len, value): (usize, Result<i64, (usize, usize)>) = match first {
        0x00..=0x7F => (1, Ok(i64::from(first))),
        0x80..=0xBF => {
            let n = usize::from(first & 0x3F);
            (1 + n, Err((1, n)))
        }
        0xC0..=0xDF => {
            let v = u64::from(first & 0x1F) << 8 | byte(1)?;
            (2, Ok(signed(v, 13)))
        }
        0xE0..=0xEF => {
            let n = (usize::from(first & 0x0F) << 8) | byte(1)? as usize;
            (2 + n, Err((2, n)))
        }
        0xF0 => {
            let n = uint(4)? as usize;
            (5usize.checked_add(n).ok_or(PAST)?, Err((5, n)))
        }
        0xF1 => (3, Ok(signed(uint(2)?, 16))),
        0xF2 => (4, Ok(signed(uint(3)?, 24))),
        0xF3 => (5, Ok(signed(uint(4)?, 32))),
        0xF4 => (9, Ok(uint(8)? as i64)),
        _ => return Err("listpack entry has an invalid encoding"),
    };
    let backlen = backlen_size(len);
    let next = p
        .checked_add(len)
        .and_then(|n| n.checked_add(backlen))
        .filter(|&n| n <= end)
        .ok_or(PAST)?;
    if decode_backlen(&lp[p..next]) != Some(len as u64) {
        return Err("listpack entry backlen does not match the entry");
    }
    let item = match value {
        Ok(v) => Item::Int(v),
        Err((header, n)) => Item::Str(&lp[p + header..p + header + n]),
    };
    Ok((item, next))
}

/// Reads a backlen backwards from the end of `entry` (Redis's
/// `lpDecodeBacklen`), never reading before its start.
fn decode_backlen(entry: &[u8]) -> Option<u64> {
    let mut val = 0u64;
    let mut shift = 0;
    for &b in entry.iter().rev() {
        val |= u64::from(b & 127) << shift;
        if b & 128 == 0 {
            return Some(val);
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
    None
}

/// Bytes the backlen of an entry of `len` bytes takes (Redis's
/// `lpEncodeBacklen`, thresholds included).
fn backlen_size(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..16383 => 2,
        16383..2097151 => 3,
        2097151..268435455 => 4,
        _ => 5,
    }
}

/// Appends the backlen of an entry of `len` bytes.
fn push_backlen(buf: &mut Vec<u8>, len: usize) {
    let size = backlen_size(len);
    // Most significant group first; every byte but the first has the
    // continuation bit, since it is read backwards.
    for i in (0..size).rev() {
        let group = ((len >> (7 * i)) & 127) as u8;
        buf.push(if i + 1 == size { group } else { group | 128 });
    }
}

/// Builds a listpack the way Redis's `lpAppend` does: strings that spell an
/// integer are stored as the smallest integer encoding.
#[derive(Debug)]
pub struct Builder {
    buf: Vec<u8>,
    count: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// An empty listpack.
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&[0; HEADER]);
        Builder { buf, count: 0 }
    }

    /// The size the listpack has so far, terminator included (Redis's
    /// `lpBytes`, which quicklists size their nodes by).
    pub fn bytes(&self) -> usize {
        self.buf.len() + 1
    }

    /// Appends `element`.
    pub fn push(&mut self, element: &[u8]) {
        let start = self.buf.len();
        match super::strict_i64(element) {
            Some(v) => self.push_int(v),
            None => {
                let n = element.len();
                if n < 64 {
                    self.buf.push(0x80 | n as u8);
                } else if n < 4096 {
                    self.buf.push(0xE0 | (n >> 8) as u8);
                    self.buf.push(n as u8);
                } else {
                    self.buf.push(0xF0);
                    self.buf.extend_from_slice(&(n as u32).to_le_bytes());
                }
                self.buf.extend_from_slice(element);
            }
        }
        let len = self.buf.len() - start;
        push_backlen(&mut self.buf, len);
        self.count += 1;
    }

    fn push_int(&mut self, v: i64) {
        let b = &mut self.buf;
        match v {
            0..=127 => b.push(v as u8),
            -4096..=4095 => {
                let u = (v & 0x1FFF) as u16;
                b.push(0xC0 | (u >> 8) as u8);
                b.push(u as u8);
            }
            -32768..=32767 => {
                b.push(0xF1);
                b.extend_from_slice(&(v as i16).to_le_bytes());
            }
            -8_388_608..=8_388_607 => {
                b.push(0xF2);
                b.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
            }
            -2_147_483_648..=2_147_483_647 => {
                b.push(0xF3);
                b.extend_from_slice(&(v as i32).to_le_bytes());
            }
            _ => {
                b.push(0xF4);
                b.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    /// Whether nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The finished listpack.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(END);
        let total = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&total.to_le_bytes());
        let count = u16::try_from(self.count).unwrap_or(COUNT_UNKNOWN);
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(items: &[&[u8]]) -> Vec<u8> {
        let mut b = Builder::new();
        items.iter().for_each(|i| b.push(i));
        b.finish()
    }

    #[test]
    fn hand_made_listpack() {
        // "a", 1, -1 (13 bit), 1000 (13 bit), 40000 (24 bit),
        // "hello" with every integer encoding's neighbour.
        let lp: Vec<u8> = [
            &[0, 0, 0, 0, 5, 0][..],
            &[0x81, b'a', 2],                      // 6-bit string "a"
            &[0x01, 1],                            // 7-bit uint 1
            &[0xDF, 0xFF, 2],                      // 13-bit -1
            &[0xF1, 0x00, 0x80, 3],                // 16-bit -32768
            &[0xF4, 1, 0, 0, 0, 0, 0, 0, 0x80, 9], // 64-bit i64::MIN + 1
            &[0xFF],
        ]
        .concat();
        let mut lp = lp;
        let total = lp.len() as u32;
        lp[..4].copy_from_slice(&total.to_le_bytes());
        assert_eq!(
            decode(&lp),
            Ok(vec![
                Item::Str(b"a"),
                Item::Int(1),
                Item::Int(-1),
                Item::Int(-32768),
                Item::Int(i64::MIN + 1),
            ])
        );
    }

    #[test]
    fn builder_matches_redis_encodings() {
        // What Redis 7.0 gives for RPUSH l a 1 -1 300 40000 -9000000
        // 3000000000 "" 01 -0 (the last two stay strings).
        let lp = build(&[
            b"a",
            b"1",
            b"-1",
            b"300",
            b"40000",
            b"-9000000",
            b"3000000000",
            b"",
            b"01",
            b"-0",
        ]);
        let expect: Vec<u8> = [
            &[0x31, 0, 0, 0, 10, 0][..],
            &[0x81, b'a', 2],
            &[0x01, 1],
            &[0xDF, 0xFF, 2],
            &[0xC1, 0x2C, 2],
            &[0xF2, 0x40, 0x9C, 0x00, 4],
            &[0xF3, 0xC0, 0xAB, 0x76, 0xFF, 5],
            &[0xF4, 0x00, 0x5E, 0xD0, 0xB2, 0, 0, 0, 0, 9],
            &[0x80, 1],
            &[0x82, b'0', b'1', 3],
            &[0x82, b'-', b'0', 3],
            &[0xFF],
        ]
        .concat();
        assert_eq!(lp, expect);
        let back: Vec<_> = decode(&lp)
            .unwrap()
            .into_iter()
            .map(Item::to_bytes)
            .collect();
        assert_eq!(
            back,
            [
                "a",
                "1",
                "-1",
                "300",
                "40000",
                "-9000000",
                "3000000000",
                "",
                "01",
                "-0"
            ]
        );
    }

    #[test]
    fn long_strings_and_backlens() {
        for n in [
            63, 64, 125, 126, 127, 128, 4095, 4096, 16_380, 16_381, 70_000,
        ] {
            let s = vec![b'x'; n];
            let lp = build(&[&s, b"tail"]);
            let items = decode(&lp).unwrap();
            assert_eq!(items, vec![Item::Str(&s), Item::Str(b"tail")], "{n}");
        }
        for len in [1, 127, 128, 16382, 16383, 2_097_150, 2_097_151, 268_435_455] {
            let mut buf = vec![0xAA; len];
            push_backlen(&mut buf, len);
            assert_eq!(buf.len() - len, backlen_size(len));
            assert_eq!(decode_backlen(&buf), Some(len as u64), "{len}");
        }
    }

    #[test]
    fn corrupt_listpacks_are_errors() {
        let good = build(&[b"abc", b"12", b"hello world"]);
        assert!(decode(&good).is_ok());
        // Every prefix, and every single-byte change: errors or values,
        // never a panic.
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err());
        }
        for i in 0..good.len() {
            for b in [
                0x00, 0x3F, 0x7F, 0x80, 0xBF, 0xC0, 0xE0, 0xF0, 0xF4, 0xF5, 0xFF,
            ] {
                let mut bad = good.clone();
                bad[i] = b;
                let _ = decode(&bad);
            }
        }
        // Wrong count, wrong total, no terminator, bad backlen.
        let mut bad = good.clone();
        bad[4] = 2;
        assert!(decode(&bad).is_err());
        let mut bad = good.clone();
        bad[4] = 0xFF;
        bad[5] = 0xFF;
        assert!(decode(&bad).is_ok(), "65535 means unknown");
        let mut bad = good.clone();
        bad[0] += 1;
        bad.push(0xFF);
        assert!(decode(&bad).is_err());
        let mut bad = good.clone();
        bad[HEADER + 4] = 5;
        assert!(decode(&bad).is_err());
        // A 32-bit string length far past the end.
        let mut lp = vec![0, 0, 0, 0, 1, 0, 0xF0, 0xFF, 0xFF, 0xFF, 0xFF, 5, 0xFF];
        lp[0] = lp.len() as u8;
        assert!(decode(&lp).is_err());
    }
}

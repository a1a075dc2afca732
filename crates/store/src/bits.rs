//! Bit arithmetic over strings: what SETBIT, GETBIT, BITCOUNT, BITPOS,
//! BITOP and BITFIELD compute, as pure functions of byte slices.
//!
//! Bit 0 is the most significant bit of the first byte, as in Redis. Bits
//! past a string's end read as zero; functions that write are handed a
//! buffer already long enough (the server grows the string first, so that
//! it decides about size limits and copies).

/// Whether a range counts bytes or bits (BITCOUNT's and BITPOS's
/// `BYTE|BIT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Byte offsets (the default).
    Byte,
    /// Bit offsets.
    Bit,
}

/// The value of bit `offset`, zero past the end.
pub fn get_bit(bytes: &[u8], offset: u64) -> bool {
    let Ok(byte) = usize::try_from(offset >> 3) else {
        return false;
    };
    bytes
        .get(byte)
        .is_some_and(|b| b & (0x80 >> (offset & 7)) != 0)
}

/// Sets bit `offset` to `on`, returning its old value. `bytes` must hold
/// the bit.
pub fn set_bit(bytes: &mut [u8], offset: u64, on: bool) -> bool {
    let byte = &mut bytes[(offset >> 3) as usize];
    let mask = 0x80 >> (offset & 7);
    let old = *byte & mask != 0;
    if on {
        *byte |= mask;
    } else {
        *byte &= !mask;
    }
    old
}

/// The number of set bits in `bytes`.
pub fn popcount(bytes: &[u8]) -> u64 {
    // Eight bytes at a time: `count_ones` on a u64 is one instruction where
    // the CPU has it.
    let mut chunks = bytes.chunks_exact(8);
    let mut n = 0u64;
    for c in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(c);
        n += u64::from(u64::from_ne_bytes(word).count_ones());
    }
    n + chunks
        .remainder()
        .iter()
        .map(|b| u64::from(b.count_ones()))
        .sum::<u64>()
}

/// Set bits from bit `from` to bit `to`, both included; `to` must lie
/// within `bytes`.
fn popcount_bits(bytes: &[u8], from: u64, to: u64) -> u64 {
    let (first, last) = ((from >> 3) as usize, (to >> 3) as usize);
    let mut n = popcount(&bytes[first..=last]);
    // Take off the bits of the edge bytes that lie outside the range.
    let before = bytes[first] & !(0xffu8 >> (from & 7));
    let after = bytes[last] & (0x7fu8 >> (to & 7));
    n -= u64::from(before.count_ones() + after.count_ones());
    n
}

/// Resolves Redis's inclusive `start..=end` (negative counts from the end)
/// over `len` units: `None` when the range is empty.
fn resolve(start: i64, end: i64, len: u64) -> Option<(u64, u64)> {
    let len = len as i128;
    let norm = |i: i64| {
        let i = i128::from(i);
        if i < 0 { (len + i).max(0) } else { i }
    };
    let (s, e) = (norm(start), norm(end).min(len - 1));
    if s > e {
        return None;
    }
    Some((s as u64, e as u64))
}

/// BITCOUNT: the set bits of `bytes`, or of `start..=end` counted in
/// `unit`.
pub fn bitcount(bytes: &[u8], range: Option<(i64, i64, Unit)>) -> u64 {
    let Some((start, end, unit)) = range else {
        return popcount(bytes);
    };
    if start < 0 && end < 0 && start > end {
        return 0;
    }
    let len = bytes.len() as u64;
    match unit {
        Unit::Byte => match resolve(start, end, len) {
            Some((s, e)) => popcount(&bytes[s as usize..=e as usize]),
            None => 0,
        },
        Unit::Bit => match resolve(start, end, len * 8) {
            Some((s, e)) => popcount_bits(bytes, s, e),
            None => 0,
        },
    }
}

/// The first bit equal to `bit` from bit `from` to bit `to`, both
/// included and within `bytes`.
fn find_bit(bytes: &[u8], bit: bool, from: u64, to: u64) -> Option<u64> {
    // A byte holding nothing wanted: all zeros when looking for a one.
    let skip = if bit { 0x00 } else { 0xff };
    let (first, last) = ((from >> 3) as usize, (to >> 3) as usize);
    // Mask off the edges, so that bits outside the range never match.
    let masked = |i: usize| -> u8 {
        let mut b = bytes[i];
        if !bit {
            b = !b;
        }
        if i == first {
            b &= 0xff >> (from & 7);
        }
        if i == last {
            b &= !(0x7fu8 >> (to & 7));
        }
        b
    };
    let found = |i: usize, b: u8| Some(i as u64 * 8 + u64::from(b.leading_zeros()));
    let b = masked(first);
    if b != 0 {
        return found(first, b);
    }
    if first == last {
        return None;
    }
    // The middle, eight bytes at a time.
    let middle = &bytes[first + 1..last];
    let mut at = first + 1;
    let mut words = middle.chunks_exact(8);
    let skip_word = u64::from_ne_bytes([skip; 8]);
    for w in &mut words {
        let mut word = [0; 8];
        word.copy_from_slice(w);
        if u64::from_ne_bytes(word) != skip_word {
            break;
        }
        at += 8;
    }
    for (i, &b) in bytes.iter().enumerate().take(last).skip(at) {
        let b = if bit { b } else { !b };
        if b != 0 {
            return found(i, b);
        }
    }
    let b = masked(last);
    if b != 0 {
        return found(last, b);
    }
    None
}

/// BITPOS: the position of the first bit equal to `bit`, or -1.
///
/// `start` and `end` are the command's, in `unit`. Without an end, a
/// string is taken as followed by zeros: looking for a clear bit in a
/// string of ones answers the bit just past its end (Redis's special
/// case). With an end, the search stays within the range.
pub fn bitpos(bytes: &[u8], bit: bool, start: Option<i64>, end: Option<i64>, unit: Unit) -> i64 {
    let len = bytes.len() as u64;
    let (from, to) = match unit {
        Unit::Byte => {
            let s = start.unwrap_or(0);
            let e = end.unwrap_or(-1);
            match resolve(s, e, len) {
                Some((s, e)) => (s * 8, e * 8 + 7),
                None => return -1,
            }
        }
        Unit::Bit => {
            let s = start.unwrap_or(0);
            let e = end.unwrap_or(-1);
            match resolve(s, e, len * 8) {
                Some(r) => r,
                None => return -1,
            }
        }
    };
    match find_bit(bytes, bit, from, to) {
        Some(p) => p as i64,
        None if !bit && end.is_none() => (to + 1) as i64,
        None => -1,
    }
}

/// A BITOP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitOp {
    /// Bitwise and.
    And,
    /// Bitwise or.
    Or,
    /// Bitwise exclusive or.
    Xor,
    /// Bitwise not, of one source.
    Not,
}

/// BITOP: `op` over `sources`, shorter ones read as followed by zeros; as
/// long as the longest. NOT takes only the first source.
pub fn bitop(op: BitOp, sources: &[&[u8]]) -> Vec<u8> {
    let len = sources.iter().map(|s| s.len()).max().unwrap_or(0);
    let Some((first, rest)) = sources.split_first() else {
        return Vec::new();
    };
    let mut out = vec![0u8; len];
    out[..first.len()].copy_from_slice(first);
    match op {
        BitOp::Not => {
            for b in &mut out {
                *b = !*b;
            }
        }
        BitOp::And => {
            for s in rest {
                for (o, b) in out.iter_mut().zip(s.iter()) {
                    *o &= b;
                }
                // Past a source's end it is zero, and so is the result.
                if s.len() < len {
                    out[s.len()..].fill(0);
                }
            }
        }
        BitOp::Or => {
            for s in rest {
                for (o, b) in out.iter_mut().zip(s.iter()) {
                    *o |= b;
                }
            }
        }
        BitOp::Xor => {
            for s in rest {
                for (o, b) in out.iter_mut().zip(s.iter()) {
                    *o ^= b;
                }
            }
        }
    }
    out
}

/// A BITFIELD integer type: `i1`..`i64` or `u1`..`u63`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Signed (`i`) or unsigned (`u`).
    pub signed: bool,
    /// Its width in bits.
    pub bits: u32,
}

impl Field {
    /// Parses `i16`, `u8`...; `None` for anything else, `u64` included (a
    /// reply cannot carry it).
    pub fn parse(text: &[u8]) -> Option<Field> {
        let (&sign, digits) = text.split_first()?;
        let signed = match sign {
            b'i' => true,
            b'u' => false,
            _ => return None,
        };
        // Redis reads the width as a strict integer: no sign, no leading
        // zero.
        let bits = crate::rdb::strict_i64(digits)?;
        let max = if signed { 64 } else { 63 };
        (1..=max).contains(&bits).then_some(Field {
            signed,
            bits: bits as u32,
        })
    }

    fn min(self) -> i128 {
        if self.signed {
            -(1i128 << (self.bits - 1))
        } else {
            0
        }
    }

    fn max(self) -> i128 {
        if self.signed {
            (1i128 << (self.bits - 1)) - 1
        } else {
            (1i128 << self.bits) - 1
        }
    }

    /// `v` cut to the field's width, as two's complement.
    fn wrap(self, v: i128) -> i64 {
        let mask = (1i128 << self.bits) - 1;
        let low = v & mask;
        if self.signed && low > self.max() {
            (low - (1i128 << self.bits)) as i64
        } else {
            low as i64
        }
    }
}

/// What BITFIELD does when a value does not fit its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Keep the low bits (the default).
    Wrap,
    /// Clamp to the field's smallest or largest value.
    Sat,
    /// Change nothing and answer nil.
    Fail,
}

/// The raw bits at `offset`, `bits` wide (at most 64), zero past the end.
fn get_raw(bytes: &[u8], offset: u64, bits: u32) -> u64 {
    let mut v = 0u64;
    for i in 0..u64::from(bits) {
        v = (v << 1) | u64::from(get_bit(bytes, offset + i));
    }
    v
}

/// The field at bit `offset` of `bytes`, zero past the end.
pub fn get_field(bytes: &[u8], offset: u64, field: Field) -> i64 {
    let raw = get_raw(bytes, offset, field.bits);
    if field.signed && field.bits < 64 && raw >> (field.bits - 1) & 1 == 1 {
        // Sign-extend.
        (raw | (u64::MAX << field.bits)) as i64
    } else {
        raw as i64
    }
}

/// Writes `value`'s low bits into the field at bit `offset`; `bytes` must
/// hold it.
pub fn set_field(bytes: &mut [u8], offset: u64, field: Field, value: i64) {
    let bits = u64::from(field.bits);
    for i in 0..bits {
        let on = (value as u64) >> (bits - 1 - i) & 1 == 1;
        set_bit(bytes, offset + i, on);
    }
}

/// The value a field takes when `value` is stored in it, or `None` if it
/// does not fit and `overflow` is FAIL. An unsigned field takes a negative
/// value as the 64-bit pattern it has, as Redis does: too big.
pub fn fit(field: Field, value: i128, overflow: Overflow) -> Option<i64> {
    if (field.min()..=field.max()).contains(&value) {
        return Some(value as i64);
    }
    match overflow {
        Overflow::Wrap => Some(field.wrap(value)),
        Overflow::Sat => Some(if value > field.max() {
            field.max() as i64
        } else {
            field.min() as i64
        }),
        Overflow::Fail => None,
    }
}

/// BITFIELD SET's new value for `value`.
pub fn set_value(field: Field, value: i64, overflow: Overflow) -> Option<i64> {
    let v = if field.signed {
        i128::from(value)
    } else {
        i128::from(value as u64)
    };
    fit(field, v, overflow)
}

/// BITFIELD INCRBY's new value for `old` plus `by`.
pub fn incr_value(field: Field, old: i64, by: i64, overflow: Overflow) -> Option<i64> {
    fit(field, i128::from(old) + i128::from(by), overflow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The naive model: one bit at a time.
    fn bits_of(bytes: &[u8]) -> Vec<bool> {
        (0..bytes.len() as u64 * 8)
            .map(|i| bytes[(i / 8) as usize] >> (7 - i % 8) & 1 == 1)
            .collect()
    }

    fn naive_count(bytes: &[u8], from: u64, to: u64) -> u64 {
        bits_of(bytes)[from as usize..=to as usize]
            .iter()
            .filter(|b| **b)
            .count() as u64
    }

    /// Redis's range rules, written out step by step.
    fn naive_range(start: i64, end: i64, total: i64) -> Option<(i64, i64)> {
        let mut s = if start < 0 { total + start } else { start };
        let mut e = if end < 0 { total + end } else { end };
        if s < 0 {
            s = 0;
        }
        if e < 0 {
            e = 0;
        }
        if e >= total {
            e = total - 1;
        }
        (s <= e).then_some((s, e))
    }

    fn naive_bitcount(bytes: &[u8], start: i64, end: i64, unit: Unit) -> u64 {
        if start < 0 && end < 0 && start > end {
            return 0;
        }
        let scale = if unit == Unit::Bit { 1 } else { 8 };
        let total = bytes.len() as i64 * 8 / scale;
        match naive_range(start, end, total) {
            Some((s, e)) => naive_count(bytes, (s * scale) as u64, (e * scale + scale - 1) as u64),
            None => 0,
        }
    }

    fn naive_bitpos(bytes: &[u8], bit: bool, start: i64, end: Option<i64>, unit: Unit) -> i64 {
        let scale = if unit == Unit::Bit { 1 } else { 8 };
        let total = bytes.len() as i64 * 8 / scale;
        let Some((s, e)) = naive_range(start, end.unwrap_or(-1), total) else {
            return -1;
        };
        let all = bits_of(bytes);
        let (from, to) = (s * scale, e * scale + scale - 1);
        for i in from..=to {
            if all[i as usize] == bit {
                return i;
            }
        }
        if !bit && end.is_none() { to + 1 } else { -1 }
    }

    #[test]
    fn single_bits() {
        let mut b = vec![0u8; 2];
        assert!(!set_bit(&mut b, 1, true));
        assert!(set_bit(&mut b, 1, true));
        assert_eq!(b, [0x40, 0]);
        assert!(get_bit(&b, 1));
        assert!(!get_bit(&b, 100));
        assert!(!get_bit(&b, u64::MAX));
    }

    #[test]
    fn counts_like_redis() {
        let s = b"foobar";
        assert_eq!(bitcount(s, None), 26);
        assert_eq!(bitcount(s, Some((0, 0, Unit::Byte))), 4);
        assert_eq!(bitcount(s, Some((1, 1, Unit::Byte))), 6);
        assert_eq!(bitcount(s, Some((5, 30, Unit::Bit))), 17);
        assert_eq!(bitcount(s, Some((-1, -2, Unit::Byte))), 0);
        assert_eq!(bitcount(b"", Some((0, -1, Unit::Bit))), 0);
        assert_eq!(bitcount(s, Some((i64::MIN, i64::MAX, Unit::Bit))), 26);
    }

    #[test]
    fn positions_like_redis() {
        assert_eq!(
            bitpos(&[0xff, 0xf0, 0], true, Some(2), None, Unit::Byte),
            -1
        );
        assert_eq!(
            bitpos(&[0xff, 0xff, 0xff], false, None, None, Unit::Byte),
            24
        );
        assert_eq!(
            bitpos(&[0xff, 0xff, 0xff], false, Some(0), Some(-1), Unit::Byte),
            -1
        );
        assert_eq!(
            bitpos(&[0x00, 0xff, 0xf0], true, Some(7), Some(15), Unit::Bit),
            8
        );
        assert_eq!(
            bitpos(&[0x00, 0xff, 0xf0], false, Some(7), Some(15), Unit::Bit),
            7
        );
        assert_eq!(
            bitpos(&[0x00, 0xff, 0xf0], false, Some(8), Some(15), Unit::Bit),
            -1
        );
        assert_eq!(bitpos(b"", true, None, None, Unit::Byte), -1);
        assert_eq!(bitpos(b"", false, None, None, Unit::Byte), -1);
    }

    /// One wanted bit anywhere in long runs of the other: the word-wide
    /// skip finds it wherever it lies.
    #[test]
    fn positions_in_long_runs() {
        for len in 1..40usize {
            for at in 0..len as u64 * 8 {
                let mut zeros = vec![0u8; len];
                set_bit(&mut zeros, at, true);
                assert_eq!(bitpos(&zeros, true, None, None, Unit::Byte), at as i64);
                let mut ones = vec![0xffu8; len];
                set_bit(&mut ones, at, false);
                assert_eq!(bitpos(&ones, false, None, None, Unit::Byte), at as i64);
                let from = at.saturating_sub(3) as i64;
                assert_eq!(
                    bitpos(&ones, false, Some(from), Some(-1), Unit::Bit),
                    at as i64
                );
            }
        }
    }

    #[test]
    fn operations() {
        let (a, b): (&[u8], &[u8]) = (b"\xff\x0f\xaa", b"\xf0");
        assert_eq!(bitop(BitOp::And, &[a, b]), [0xf0, 0, 0]);
        assert_eq!(bitop(BitOp::Or, &[b, a]), [0xff, 0x0f, 0xaa]);
        assert_eq!(bitop(BitOp::Xor, &[a, b]), [0x0f, 0x0f, 0xaa]);
        assert_eq!(bitop(BitOp::Not, &[b]), [0x0f]);
        assert_eq!(bitop(BitOp::And, &[b"", b""]), Vec::<u8>::new());
    }

    #[test]
    fn fields() {
        let i8f = Field::parse(b"i8").unwrap();
        let u8f = Field::parse(b"u8").unwrap();
        assert_eq!(Field::parse(b"u64"), None);
        assert_eq!(Field::parse(b"i65"), None);
        assert_eq!(Field::parse(b"i0"), None);
        assert_eq!(Field::parse(b"x8"), None);
        assert!(Field::parse(b"i64").is_some());
        assert_eq!(incr_value(i8f, 127, 1, Overflow::Wrap), Some(-128));
        assert_eq!(incr_value(i8f, 127, 1, Overflow::Sat), Some(127));
        assert_eq!(incr_value(i8f, -128, -1, Overflow::Fail), None);
        assert_eq!(incr_value(u8f, 255, 1, Overflow::Wrap), Some(0));
        assert_eq!(incr_value(u8f, 0, -1, Overflow::Sat), Some(0));
        assert_eq!(set_value(u8f, -1, Overflow::Sat), Some(255));
        assert_eq!(set_value(u8f, -1, Overflow::Wrap), Some(255));
        let i64f = Field::parse(b"i64").unwrap();
        assert_eq!(
            incr_value(i64f, i64::MAX, 1, Overflow::Wrap),
            Some(i64::MIN)
        );
        let mut buf = vec![0u8; 9];
        set_field(&mut buf, 3, i64f, -2);
        assert_eq!(get_field(&buf, 3, i64f), -2);
        set_field(&mut buf, 60, u8f, 0xab);
        assert_eq!(get_field(&buf, 60, u8f), 0xab);
        assert_eq!(
            get_field(&buf, 60, Field::parse(b"i8").unwrap()),
            0xab - 256
        );
    }

    proptest! {
        #[test]
        fn bitcount_matches_model(bytes in proptest::collection::vec(any::<u8>(), 0..40),
                                  start in -400i64..400, end in -400i64..400, bit in any::<bool>()) {
            let unit = if bit { Unit::Bit } else { Unit::Byte };
            prop_assert_eq!(bitcount(&bytes, Some((start, end, unit))), naive_bitcount(&bytes, start, end, unit));
            prop_assert_eq!(bitcount(&bytes, None), bits_of(&bytes).iter().filter(|b| **b).count() as u64);
        }

        #[test]
        fn bitpos_matches_model(bytes in proptest::collection::vec(prop_oneof![Just(0u8), Just(0xff), any::<u8>()], 1..40),
                                start in -400i64..400, end in proptest::option::of(-400i64..400),
                                bit in any::<bool>(), in_bits in any::<bool>()) {
            let unit = if in_bits && end.is_some() { Unit::Bit } else { Unit::Byte };
            prop_assert_eq!(bitpos(&bytes, bit, Some(start), end, unit), naive_bitpos(&bytes, bit, start, end, unit));
        }

        #[test]
        fn bitop_matches_model(sources in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 1..5), op in 0..4u8) {
            let op = [BitOp::And, BitOp::Or, BitOp::Xor, BitOp::Not][op as usize];
            let refs: Vec<&[u8]> = sources.iter().map(|s| &s[..]).collect();
            let got = bitop(op, &refs);
            let len = sources.iter().map(Vec::len).max().unwrap_or(0);
            prop_assert_eq!(got.len(), len);
            for i in 0..len * 8 {
                let bit = |s: &Vec<u8>| bits_of(s).get(i).copied().unwrap_or(false);
                let want = match op {
                    BitOp::Not => !bit(&sources[0]),
                    BitOp::And => sources.iter().all(bit),
                    BitOp::Or => sources.iter().any(bit),
                    BitOp::Xor => sources.iter().filter(|s| bit(s)).count() % 2 == 1,
                };
                prop_assert_eq!(bits_of(&got)[i], want);
            }
        }

        #[test]
        fn fields_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..12),
                             offset in 0u64..100, signed in any::<bool>(), bits in 1u32..=64, value in any::<i64>(),
                             by in any::<i64>(), ow in 0..3u8) {
            let bits = if signed { bits } else { bits.min(63) };
            let field = Field { signed, bits };
            let overflow = [Overflow::Wrap, Overflow::Sat, Overflow::Fail][ow as usize];
            // Reading matches bit-by-bit reading.
            let all = bits_of(&bytes);
            let mut raw: u64 = 0;
            for i in 0..u64::from(bits) {
                raw = raw << 1 | u64::from(all.get((offset + i) as usize).copied().unwrap_or(false));
            }
            let got = get_field(&bytes, offset, field);
            let sign = signed && raw >> (bits - 1) & 1 == 1;
            let want = if sign && bits < 64 { (i128::from(raw) - (1i128 << bits)) as i64 } else { raw as i64 };
            prop_assert_eq!(got, want);
            // A value that fits reads back as written and touches only its bits.
            if let Some(v) = set_value(field, value, overflow) {
                let mut buf = bytes.clone();
                buf.resize((offset + u64::from(bits)).div_ceil(8).max(bytes.len() as u64) as usize, 0);
                let before = bits_of(&buf);
                set_field(&mut buf, offset, field, v);
                prop_assert_eq!(get_field(&buf, offset, field), v);
                let after = bits_of(&buf);
                for i in 0..after.len() as u64 {
                    if i < offset || i >= offset + u64::from(bits) {
                        prop_assert_eq!(before[i as usize], after[i as usize]);
                    }
                }
            }
            if let Some(v) = incr_value(field, got, by, overflow) {
                prop_assert!(i128::from(v) >= field.min() && i128::from(v) <= field.max());
                if overflow == Overflow::Wrap {
                    let m = 1i128 << bits;
                    prop_assert_eq!((i128::from(v) - i128::from(got) - i128::from(by)).rem_euclid(m), 0);
                }
            } else {
                prop_assert!(overflow == Overflow::Fail);
            }
        }
    }
}

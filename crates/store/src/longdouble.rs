//! INCRBYFLOAT's arithmetic: Redis computes it in C's `long double`, the
//! x87 80-bit format on the machines Redis 7.0 is built for, and prints it
//! with `"%.17Lf"` less trailing zeros. `f64` would answer `0.1 + 0.2` with
//! `0.30000000000000004` where Redis answers `0.3`, so the value is kept in
//! the same format, with `rustc_apfloat`'s correctly rounded parsing and
//! addition (a port of LLVM's APFloat), and printed exactly here.

use rustc_apfloat::ieee::X87DoubleExtended;
use rustc_apfloat::{Float, Round, Status};

/// An 80-bit extended float.
pub type LongDouble = X87DoubleExtended;

/// Zero, what INCRBYFLOAT adds to when the key is missing.
pub const ZERO: LongDouble = <LongDouble as Float>::ZERO;

/// Redis's `MAX_LONG_DOUBLE_CHARS`: longer strings are not numbers.
const MAX_CHARS: usize = 5 * 1024;

/// Redis's `string2ld`: the whole string is a number `strtold` reads, with
/// no leading space, not NaN, and not out of range (a value too large, or
/// so small it becomes zero).
pub fn parse(arg: &[u8]) -> Option<LongDouble> {
    if arg.is_empty() || arg.len() >= MAX_CHARS {
        return None;
    }
    let text = std::str::from_utf8(arg).ok()?;
    let (negative, body) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        let inf = LongDouble::INFINITY;
        return Some(if negative { -inf } else { inf });
    }
    // Digits, a point, an exponent, or hexadecimal digits with `x` and `p`:
    // anything else (spaces, NaN) is refused before the parser sees it.
    let hex = lower.starts_with("0x");
    let allowed = |c: char| {
        c.is_ascii_digit()
            || matches!(c, '.' | 'e' | '+' | '-')
            || (hex && matches!(c, 'x' | 'p' | 'a'..='f'))
    };
    if body.is_empty() || !lower.chars().all(allowed) || !whole_number(&lower) {
        return None;
    }
    // strtold reads `0x10` as 16; the parser wants a binary exponent.
    let body = if hex && !lower.contains('p') {
        format!("{lower}p0")
    } else {
        lower
    };
    let parsed = LongDouble::from_str_r(&body, Round::NearestTiesToEven).ok()?;
    let value = parsed.value;
    let out_of_range = parsed.status.intersects(Status::OVERFLOW)
        || (parsed.status.intersects(Status::UNDERFLOW) && value.is_zero());
    if out_of_range || value.is_nan() {
        return None;
    }
    Some(if negative { -value } else { value })
}

/// Whether `s` (lowercase, unsigned) is, all of it, a number `strtold`
/// reads: digits with an optional point (at least one digit), then an
/// optional exponent with at least one digit (`e`, or `p` after `0x`).
/// `1e` or `0x` are not: strtold stops before the `e` or the `x`.
fn whole_number(s: &str) -> bool {
    let b = s.as_bytes();
    let hex = b.starts_with(b"0x");
    let digit = |c: u8| {
        if hex {
            c.is_ascii_hexdigit()
        } else {
            c.is_ascii_digit()
        }
    };
    let mut i = if hex { 2 } else { 0 };
    let mut digits = 0;
    while i < b.len() && digit(b[i]) {
        i += 1;
        digits += 1;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while i < b.len() && digit(b[i]) {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return false;
    }
    if b.get(i) == Some(if hex { &b'p' } else { &b'e' }) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    i == b.len()
}

/// `a + b`, rounded to nearest even.
pub fn add(a: LongDouble, b: LongDouble) -> LongDouble {
    (a + b).value
}

/// Whether `v` is a number (neither NaN nor infinite): what INCRBYFLOAT
/// may store.
pub fn is_finite(v: LongDouble) -> bool {
    !v.is_nan() && !v.is_infinite()
}

/// Redis's `ld2string(.., LD_STR_HUMAN)`: `"%.17Lf"`, then no trailing
/// zeros after the point, no point without decimals, and `0` for `-0`.
/// The value must be finite.
pub fn format(v: LongDouble) -> String {
    let bits = v.to_bits();
    let negative = (bits >> 79) & 1 == 1;
    let biased = ((bits >> 64) & 0x7fff) as i64;
    let sig = bits as u64;
    // v = sig * 2^e2 exactly.
    let e2 = if biased == 0 { 1 } else { biased } - 16383 - 63;
    // v * 10^17 = sig * 5^17 * 2^(e2 + 17), rounded to an integer the way
    // printf rounds: to nearest, ties to even.
    let mut n = Big::from_u64(sig);
    n.mul_small(1_220_703_125); // 5^13
    n.mul_small(625); // 5^4
    let shift = e2 + 17;
    if shift >= 0 {
        n.shl(shift as usize);
    } else {
        n.shr_round_even((-shift) as usize);
    }
    let mut digits = n.to_decimal();
    if digits.len() < 18 {
        digits = format!("{}{digits}", "0".repeat(18 - digits.len()));
    }
    let (int, frac) = digits.split_at(digits.len() - 17);
    let frac = frac.trim_end_matches('0');
    let text = if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    };
    if negative && text != "0" {
        format!("-{text}")
    } else {
        text
    }
}

/// A non-negative integer of any size: little-endian 32-bit limbs.
#[derive(Debug)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(v: u64) -> Big {
        let mut b = Big(vec![v as u32, (v >> 32) as u32]);
        b.trim();
        b
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(m) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn shl(&mut self, bits: usize) {
        let (limbs, bits) = (bits / 32, bits % 32);
        if bits > 0 {
            let mut carry = 0u32;
            for limb in &mut self.0 {
                let v = (*limb << bits) | carry;
                carry = *limb >> (32 - bits);
                *limb = v;
            }
            if carry > 0 {
                self.0.push(carry);
            }
        }
        let mut shifted = vec![0; limbs];
        shifted.append(&mut self.0);
        self.0 = shifted;
        self.trim();
    }

    fn bit(&self, i: usize) -> bool {
        self.0
            .get(i / 32)
            .is_some_and(|limb| (limb >> (i % 32)) & 1 == 1)
    }

    /// Whether any of the lowest `bits` bits is set.
    fn any_below(&self, bits: usize) -> bool {
        let (limbs, rest) = (bits / 32, bits % 32);
        self.0.iter().take(limbs).any(|&l| l != 0)
            || (rest > 0
                && self
                    .0
                    .get(limbs)
                    .is_some_and(|l| l & ((1 << rest) - 1) != 0))
    }

    /// Divides by 2^bits, rounding to nearest, ties to even.
    fn shr_round_even(&mut self, bits: usize) {
        let half = bits > 0 && self.bit(bits - 1);
        let sticky = bits > 1 && self.any_below(bits - 1);
        let (limbs, rest) = (bits / 32, bits % 32);
        if limbs >= self.0.len() {
            self.0.clear();
        } else {
            self.0.drain(..limbs);
            if rest > 0 {
                let mut carry = 0u32;
                for limb in self.0.iter_mut().rev() {
                    let v = (*limb >> rest) | carry;
                    carry = *limb << (32 - rest);
                    *limb = v;
                }
            }
            self.trim();
        }
        let odd = self.bit(0);
        if half && (sticky || odd) {
            self.add_one();
        }
    }

    fn add_one(&mut self) {
        for limb in &mut self.0 {
            let (v, overflow) = limb.overflowing_add(1);
            *limb = v;
            if !overflow {
                return;
            }
        }
        self.0.push(1);
    }

    fn to_decimal(&self) -> String {
        let mut limbs = self.0.clone();
        let mut chunks = Vec::new();
        while !limbs.is_empty() {
            let mut rem = 0u64;
            for limb in limbs.iter_mut().rev() {
                let v = (rem << 32) | u64::from(*limb);
                *limb = (v / 1_000_000_000) as u32;
                rem = v % 1_000_000_000;
            }
            while limbs.last() == Some(&0) {
                limbs.pop();
            }
            chunks.push(rem as u32);
        }
        let Some((last, rest)) = chunks.split_last() else {
            return "0".to_string();
        };
        let mut out = last.to_string();
        for chunk in rest.iter().rev() {
            out.push_str(&format!("{chunk:09}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incr(a: &str, b: &str) -> String {
        format(add(
            parse(a.as_bytes()).unwrap(),
            parse(b.as_bytes()).unwrap(),
        ))
    }

    #[test]
    fn sums_as_redis_prints_them() {
        // Each expected text is what redis-server 7.0 answers.
        assert_eq!(incr("0.1", "0.2"), "0.3");
        assert_eq!(incr("0.3", "1e-17"), "0.30000000000000001");
        assert_eq!(incr("10.5", "0.1"), "10.6");
        assert_eq!(incr("10.6", "3.0e3"), "3010.60000000000000009");
        assert_eq!(incr("1", "1e20"), "100000000000000000000");
        assert_eq!(incr("5.0e3", "2.0e-10"), "5000.00000000020000002");
        assert_eq!(incr("9223372036854775807", "-1.5"), "9223372036854775805.5");
        assert_eq!(incr("0", "-0"), "0");
        assert_eq!(incr("-1e-30", "0"), "0");
        assert_eq!(incr("-5", "2"), "-3");
        assert_eq!(incr("0x10", "1"), "17");
        assert_eq!(incr("0x.8", "0"), "0.5");
        assert_eq!(incr("0x1.8p1", "0"), "3");
        assert_eq!(incr("1.e5", "-.5"), "99999.5");
    }

    #[test]
    fn parsing_refuses_what_string2ld_refuses() {
        for bad in [
            "", " 1", "1 ", "nan", "-nan", "1.2.3", "abc", "1e99999", "1e-99999", "1,5",
            // Where strtold stops early (redis-server 7.0 refuses each).
            "1e", "1e+", "1e-", "e5", ".e1", ".", "0x", "0x1p", "1e5x", "+-1", "--1",
        ] {
            assert!(parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
        for good in [
            "inf",
            "-Infinity",
            "+3",
            ".5",
            "5.",
            "1E+3",
            "0x1p-2",
            "-0",
            "1.e5",
            "-.5",
            "0x.8",
            "0x1.8p1",
            "0X10",
            "00.5",
        ] {
            assert!(parse(good.as_bytes()).is_some(), "{good:?}");
        }
    }

    #[test]
    fn ties_round_to_even_as_printf_does() {
        // 2^-18 * 10^17 = 381469726562.5 exactly.
        let v = parse(b"0x1p-18").unwrap();
        assert_eq!(format(v), "0.00000381469726562");
        let v = parse(b"0x3p-18").unwrap();
        assert_eq!(format(v), "0.00001144409179688");
    }
}

//! Scores as text: reading them the ways Redis reads them (`strtod` with
//! each caller's own checks) and printing them as Redis prints them.
//!
//! Redis reads a score with C's `strtod` in three different wrappers, and
//! each accepts something the others refuse: ZADD's `string2d` refuses
//! leading spaces, trailing bytes, overflow and NaN; a range bound
//! (`zslParseRange`) takes any prefix that ends at the first NUL, spaces
//! and overflow included, and only refuses NaN and trailing bytes; an old
//! RDB file's text scores are read by `sscanf("%lg")`, which takes any
//! prefix at all. [`strtod`] is the one scanner under all three: glibc's
//! grammar (decimal, hexadecimal, `inf`, `infinity`, `nan(...)`), the
//! value correctly rounded (Rust's parser for decimal, `rustc_apfloat` for
//! hexadecimal), and whether glibc would have set `ERANGE`.
//!
//! Printing is C's `"%.17g"` (what Redis 7.0's `addReplyDouble` and
//! `d2string` use), built on Rust's `{:.16e}`, which rounds exactly as glibc
//! does (to nearest, ties to even, on the exact binary value).

use rustc_apfloat::ieee::Double;
use rustc_apfloat::{Float, Round, Status};

/// What [`strtod`] read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Parsed {
    /// The value (0 when nothing was read).
    pub(crate) value: f64,
    /// How many bytes it took, leading spaces included; 0 when there is no
    /// number at the start.
    pub(crate) len: usize,
    /// Whether glibc would set `ERANGE`: a finite number too large
    /// (the value is then infinite), or a non-zero one so small it became
    /// zero. (glibc also sets it for results that are merely subnormal;
    /// no caller here looks at it then, so neither does this flag.)
    pub(crate) range_error: bool,
}

/// C's `isspace` in the C locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The longest number at the start of `s`, as glibc's `strtod` reads it.
pub(crate) fn strtod(s: &[u8]) -> Parsed {
    const NOTHING: Parsed = Parsed {
        value: 0.0,
        len: 0,
        range_error: false,
    };
    let mut i = 0;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let signed = |v: f64| if negative { -v } else { v };
    let rest = &s[i..];
    let starts =
        |word: &[u8]| rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word);
    if starts(b"infinity") {
        return Parsed {
            value: signed(f64::INFINITY),
            len: i + 8,
            range_error: false,
        };
    }
    if starts(b"inf") {
        return Parsed {
            value: signed(f64::INFINITY),
            len: i + 3,
            range_error: false,
        };
    }
    if starts(b"nan") {
        // "nan(n-char-sequence)": letters, digits and underscores in
        // parentheses belong to the number.
        let mut len = i + 3;
        if s.get(len) == Some(&b'(') {
            let close = s[len + 1..]
                .iter()
                .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_'));
            if let Some(k) = close
                && s[len + 1 + k] == b')'
            {
                len += k + 2;
            }
        }
        return Parsed {
            value: f64::NAN,
            len,
            range_error: false,
        };
    }
    let hex = rest.len() >= 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x';
    if hex && let Some(p) = hex_float(&rest[2..]) {
        return Parsed {
            value: signed(p.value),
            len: i + 2 + p.len,
            range_error: p.range_error,
        };
    }
    // Decimal: digits, a point and digits (at least one digit in all),
    // then an exponent only if it has digits.
    let digits = |from: usize| {
        rest[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let int = digits(0);
    let mut end = int;
    let mut frac = 0;
    if rest.get(end) == Some(&b'.') {
        frac = digits(end + 1);
        end += 1 + frac;
    }
    if int + frac == 0 {
        return NOTHING;
    }
    let mantissa_end = end;
    if matches!(rest.get(end), Some(b'e' | b'E')) {
        let mut e = end + 1;
        if matches!(rest.get(e), Some(b'+' | b'-')) {
            e += 1;
        }
        let n = digits(e);
        if n > 0 {
            end = e + n;
        }
    }
    // The grammar was checked above, so Rust's parser accepts the text
    // (it takes "1." and ".5" as strtod does).
    let text = std::str::from_utf8(&rest[..end]).unwrap_or("0");
    let value: f64 = text.parse().unwrap_or(0.0);
    let nonzero = rest[..mantissa_end]
        .iter()
        .any(|b| matches!(b, b'1'..=b'9'));
    Parsed {
        value: signed(value),
        len: i + end,
        range_error: value.is_infinite() || (value == 0.0 && nonzero),
    }
}

/// A hexadecimal float after its `0x`: hex digits, a point and hex digits
/// (at least one digit in all), then `p` and a decimal exponent only if it
/// has digits. `None` when there is no digit (strtod then reads the `0`
/// alone).
fn hex_float(s: &[u8]) -> Option<Parsed> {
    let hex_digits = |from: usize| {
        s[from..]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count()
    };
    let int = hex_digits(0);
    let mut end = int;
    let mut frac = 0;
    if s.get(end) == Some(&b'.') {
        frac = hex_digits(end + 1);
        end += 1 + frac;
    }
    if int + frac == 0 {
        return None;
    }
    let mantissa_end = end;
    let mut exponent: i64 = 0;
    if matches!(s.get(end), Some(b'p' | b'P')) {
        let mut e = end + 1;
        let negative = s.get(e) == Some(&b'-');
        if matches!(s.get(e), Some(b'+' | b'-')) {
            e += 1;
        }
        let digits = &s[e..];
        let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        if n > 0 {
            // Far past any double's range either way; the parser then
            // reports the overflow or the underflow.
            let magnitude = digits[..n]
                .iter()
                .fold(0i64, |v, &d| (v * 10 + i64::from(d - b'0')).min(1_000_000));
            exponent = if negative { -magnitude } else { magnitude };
            end = e + n;
        }
    }
    let mantissa = std::str::from_utf8(&s[..mantissa_end]).ok()?;
    // A mantissa of only a point and digits ("0x.8") needs a leading 0 for
    // the parser.
    let text = format!("0x0{mantissa}p{exponent}");
    let parsed = Double::from_str_r(&text, Round::NearestTiesToEven).ok()?;
    let value = f64::from_bits(parsed.value.to_bits() as u64);
    let range_error = parsed.status.intersects(Status::OVERFLOW)
        || (parsed.status.intersects(Status::UNDERFLOW) && value == 0.0);
    Some(Parsed {
        value,
        len: end,
        range_error,
    })
}

/// Redis's `string2d` (ZADD's scores, ZINCRBY's increment, WEIGHTS): the
/// whole argument is one number, with no leading space, not out of range
/// and not NaN.
pub(crate) fn string2d(s: &[u8]) -> Option<f64> {
    if s.is_empty() || is_space(s[0]) {
        return None;
    }
    let p = strtod(s);
    if p.len != s.len() || p.range_error || p.value.is_nan() {
        return None;
    }
    Some(p.value)
}

/// A range bound as `zslParseRange` reads one: `strtod` on the text up to
/// its first NUL, which must all be taken (spaces before it and overflow
/// are fine, and so is nothing at all: the empty bound is 0), and not NaN.
pub(crate) fn range_bound(s: &[u8]) -> Option<f64> {
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    let p = strtod(&s[..end]);
    if p.len != end || p.value.is_nan() {
        return None;
    }
    Some(p.value)
}

/// Redis's `double2ll`: the integer a score is, if it is one in the range
/// where listpacks store scores as integers (`-0` counts as `0`).
pub(crate) fn double2ll(d: f64) -> Option<i64> {
    const LIMIT: f64 = (i64::MAX / 2) as f64;
    if !(-LIMIT..=LIMIT).contains(&d) {
        return None;
    }
    let i = d as i64;
    (i as f64 == d).then_some(i)
}

/// A score's text, on the stack: [`format_score`]'s answer.
#[derive(Clone, Copy)]
pub struct ScoreText {
    buf: [u8; 32],
    len: u8,
}

impl ScoreText {
    /// The text's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The decimal text of `i`.
    pub(crate) fn integer(i: i64) -> ScoreText {
        let mut out = ScoreText {
            buf: [0; 32],
            len: 0,
        };
        let _ = std::fmt::Write::write_fmt(&mut out, format_args!("{i}"));
        out
    }

    fn push(&mut self, b: u8) {
        // At most 24 bytes are ever written ("-1.2345678901234567e-308").
        if let Some(slot) = self.buf.get_mut(usize::from(self.len)) {
            *slot = b;
            self.len += 1;
        }
    }

    fn push_all(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|&b| self.push(b));
    }
}

impl AsRef<[u8]> for ScoreText {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Debug for ScoreText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for ScoreText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Write for ScoreText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.push_all(s.as_bytes());
        Ok(())
    }
}

/// A score as Redis 7.0 replies with it (`addReplyDouble`): `inf` and
/// `-inf`, else C's `"%.17g"` (`0.1` is `0.10000000000000001`, `1e17` is
/// `1e+17`, `-0` is `-0`). RESP2 sends it as a bulk string, RESP3 after a
/// `,`; the text is the same. The same text is what listpacks store for
/// scores that are not integers (Redis's `d2string`).
pub fn format_score(score: f64) -> ScoreText {
    let mut out = ScoreText {
        buf: [0; 32],
        len: 0,
    };
    if score.is_nan() {
        out.push_all(b"nan");
        return out;
    }
    if score.is_infinite() {
        out.push_all(if score > 0.0 { b"inf" } else { b"-inf" });
        return out;
    }
    // Seventeen significant digits, rounded as printf rounds them.
    let mut sci = ScoreText {
        buf: [0; 32],
        len: 0,
    };
    let _ = std::fmt::Write::write_fmt(&mut sci, format_args!("{:.16e}", score.abs()));
    let text = sci.as_bytes();
    let e_at = text.iter().position(|&b| b == b'e').unwrap_or(text.len());
    let digits: Vec<u8> = text[..e_at]
        .iter()
        .copied()
        .filter(u8::is_ascii_digit)
        .collect();
    let exp: i32 = std::str::from_utf8(&text[(e_at + 1).min(text.len())..])
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    if score.is_sign_negative() {
        out.push(b'-');
    }
    // %g: fixed notation when -4 <= exponent < precision, else
    // scientific; trailing zeros (and a bare point) go either way.
    let significant = digits
        .iter()
        .rposition(|&d| d != b'0')
        .map_or(1, |last| last + 1);
    let digits = &digits[..significant];
    if (-4..17).contains(&exp) {
        if exp < 0 {
            out.push_all(b"0.");
            for _ in 0..(-exp - 1) {
                out.push(b'0');
            }
            out.push_all(digits);
        } else {
            let int = exp as usize + 1;
            for k in 0..int {
                out.push(digits.get(k).copied().unwrap_or(b'0'));
            }
            if digits.len() > int {
                out.push(b'.');
                out.push_all(&digits[int..]);
            }
        }
    } else {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.push_all(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let _ = std::fmt::Write::write_fmt(&mut out, format_args!("{:02}", exp.abs()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_redis_replies() {
        // Each expected text is what redis-server 7.0.15 answers to ZSCORE
        // after `ZADD z <input> m` (skiplist encoding, so -0 keeps its
        // sign).
        let cases: &[(&str, &str)] = &[
            ("1.5", "1.5"),
            ("0.1", "0.10000000000000001"),
            ("1e300", "1.0000000000000001e+300"),
            ("1e-300", "1e-300"),
            ("inf", "inf"),
            ("-inf", "-inf"),
            ("-0", "-0"),
            ("0", "0"),
            ("12345.0001220703125", "12345.000122070312"),
            ("123456789012345678", "1.2345678901234568e+17"),
            ("9007199254740993", "9007199254740992"),
            ("1e17", "1e+17"),
            ("1e16", "10000000000000000"),
            ("0.0001", "0.0001"),
            ("0.00001", "1.0000000000000001e-05"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("4.9e-324", "4.9406564584124654e-324"),
            ("-2.5", "-2.5"),
            ("3.0", "3"),
            ("0x10", "16"),
            ("0x1.8p1", "3"),
            ("1e-310", "9.9999999999999694e-311"),
            ("0.30000000000000004", "0.30000000000000004"),
            ("123.456", "123.456"),
            ("-1e-7", "-9.9999999999999995e-08"),
            (".5", "0.5"),
            ("5.", "5"),
            ("1E3", "1000"),
            ("infinity", "inf"),
            ("+1", "1"),
        ];
        for (input, want) in cases {
            let v = string2d(input.as_bytes()).unwrap_or_else(|| panic!("{input}"));
            assert_eq!(format_score(v).as_str(), *want, "{input}");
        }
    }

    #[test]
    fn string2d_refuses_what_zadd_refuses() {
        // Each refused by redis-server 7.0.15 with "value is not a valid
        // float".
        for bad in [
            " 1", "1 ", "", "1e999", "-1e999", "1e-400", "nan", "-nan", "1\0", "abc", "1.2.3",
            "0x", "e5", ".", "--1", "inf1",
        ] {
            assert_eq!(string2d(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(string2d(b"0e-400"), Some(0.0));
        assert_eq!(string2d(b"0x"), None);
        assert_eq!(string2d(b"0x.8"), Some(0.5));
        assert_eq!(string2d(b"0x1p-1074"), Some(f64::from_bits(1)));
        assert_eq!(string2d(b"0x1p1024"), None);
        assert_eq!(string2d(b"0x1p-99999999999999999999999"), None);
        assert_eq!(
            range_bound(b"0x1p99999999999999999999999"),
            Some(f64::INFINITY)
        );
        assert_eq!(string2d(b"0x0p99999999999999999999999"), Some(0.0));
        assert_eq!(string2d(b"-0x10"), Some(-16.0));
        assert_eq!(string2d(b"1e+3"), Some(1000.0));
    }

    #[test]
    fn strtod_takes_the_longest_prefix() {
        let cases: &[(&str, usize)] = &[
            ("1e", 1),
            ("1e+", 1),
            ("1.5x", 3),
            ("  -2", 4),
            ("0x", 1),
            ("0xg", 1),
            ("0x1p", 3),
            ("infinit", 3),
            ("nan(abc_1)x", 10),
            ("nan(ab", 3),
            ("x", 0),
            ("-", 0),
            ("", 0),
        ];
        for (input, len) in cases {
            assert_eq!(strtod(input.as_bytes()).len, *len, "{input:?}");
        }
    }

    #[test]
    fn range_bounds_read_as_zslparserange_does() {
        // Checked against redis-server 7.0.15's ZRANGEBYSCORE.
        assert_eq!(range_bound(b""), Some(0.0));
        assert_eq!(range_bound(b" 1"), Some(1.0));
        assert_eq!(range_bound(b"1e999"), Some(f64::INFINITY));
        assert_eq!(range_bound(b"1e-400"), Some(0.0));
        assert_eq!(range_bound(b"1\0x"), Some(1.0));
        assert_eq!(range_bound(b"1 "), None);
        assert_eq!(range_bound(b"nan"), None);
        assert_eq!(range_bound(b"-Infinity"), Some(f64::NEG_INFINITY));
    }

    #[test]
    fn double2ll_as_listpacks_use_it() {
        assert_eq!(double2ll(-0.0), Some(0));
        assert_eq!(double2ll(3.0), Some(3));
        assert_eq!(double2ll(3.5), None);
        assert_eq!(double2ll((i64::MAX / 2) as f64), Some(1 << 62));
        assert_eq!(double2ll(1e19), None);
        assert_eq!(double2ll(f64::INFINITY), None);
    }
}

//! The grammar of a RESP line's content, written with nom.
//!
//! Framing (finding line ends, waiting for payloads, tracking nesting) is the
//! decoders' job; these parsers see one complete line body, without its
//! CRLF, and say whether it is a valid integer, double, boolean and so on.
//! They run on complete input, so nom's `Incomplete` never reaches here: the
//! decoders turn "no line end yet" into `Ok(None)` in one place each.

use nom::branch::alt;
use nom::bytes::complete::{tag, take};
use nom::character::complete::{char, digit1, one_of};
use nom::combinator::{all_consuming, opt, recognize};
use nom::number::complete::recognize_float;
use nom::{IResult, Parser};

/// Redis's `LONG_STR_SIZE`: a valid integer is shorter than this.
const LONG_STR_SIZE: usize = 21;

/// Parses a 64-bit signed integer exactly as Redis's `string2ll` does.
///
/// The whole slice must be the number: an optional `-`, then digits with no
/// leading zero (a lone `0` is fine, `-0` and `+1` are not), within `i64`.
/// Redis uses this for lengths in requests and for integer arguments, so a
/// server built on this crate refuses the same inputs Redis refuses.
///
/// ```
/// use ember_resp::parse_int;
/// assert_eq!(parse_int(b"-42"), Some(-42));
/// assert_eq!(parse_int(b"007"), None);
/// assert_eq!(parse_int(b"9223372036854775808"), None);
/// ```
pub fn parse_int(input: &[u8]) -> Option<i64> {
    if input.is_empty() || input.len() >= LONG_STR_SIZE {
        return None;
    }
    all_consuming(int).parse(input).ok().map(|(_, v)| v)
}

/// The fast path for the length in a header line such as `$5\r\n`: reads
/// the digits starting at `start` and returns the value and the index of
/// the `\r` right after them.
///
/// It only answers for the common shape, a canonical number of at most 18
/// digits (which cannot overflow) followed by `\r`; for anything else it
/// returns `None` and the caller takes the general path (find the line end,
/// then [`parse_int`]), which gives the exact verdict. Lengths are on every
/// element, so this loop is most of a decoder's work on small frames.
#[inline]
pub(crate) fn quick_len(buf: &[u8], start: usize) -> Option<(i64, usize)> {
    let negative = buf.get(start) == Some(&b'-');
    let first = start + usize::from(negative);
    let mut i = first;
    let mut v: i64 = 0;
    while let Some(&d) = buf.get(i) {
        if !d.is_ascii_digit() || i - first == 18 {
            break;
        }
        v = v * 10 + i64::from(d - b'0');
        i += 1;
    }
    let digits = i - first;
    if digits == 0 || buf.get(i) != Some(&b'\r') {
        return None;
    }
    if buf[first] == b'0' && (digits > 1 || negative) {
        return None;
    }
    Some((if negative { -v } else { v }, i))
}

/// `-?(0|[1-9][0-9]*)` within `i64`.
fn int(input: &[u8]) -> IResult<&[u8], i64> {
    let (rest, minus) = opt(char('-')).parse(input)?;
    let (rest, digits) = digit1(rest)?;
    let fail = || nom::Err::Error(nom::error::Error::new(input, nom::error::ErrorKind::Digit));
    if digits[0] == b'0' && (digits.len() > 1 || minus.is_some()) {
        return Err(fail());
    }
    // Accumulate as a negative number so that i64::MIN fits.
    let mut v: i64 = 0;
    for &d in digits {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_sub(i64::from(d - b'0')))
            .ok_or_else(fail)?;
    }
    let v = if minus.is_some() {
        v
    } else {
        v.checked_neg().ok_or_else(fail)?
    };
    Ok((rest, v))
}

/// A RESP3 double: a decimal or exponent number, `inf`, `-inf` or `nan`.
pub(crate) fn parse_double(input: &[u8]) -> Option<f64> {
    let (_, text) = all_consuming(double_text).parse(input).ok()?;
    match text {
        b"inf" | b"+inf" => Some(f64::INFINITY),
        b"-inf" => Some(f64::NEG_INFINITY),
        b"nan" | b"-nan" => Some(f64::NAN),
        // recognize_float only matched ASCII sign, digits, '.', 'e'.
        _ => std::str::from_utf8(text).ok()?.parse().ok(),
    }
}

fn double_text(input: &[u8]) -> IResult<&[u8], &[u8]> {
    let special = alt((
        tag("inf"),
        tag("-inf"),
        tag("+inf"),
        tag("nan"),
        tag("-nan"),
    ));
    alt((special, recognize_float)).parse(input)
}

fn boolean(input: &[u8]) -> IResult<&[u8], bool> {
    alt((tag("t").map(|_| true), tag("f").map(|_| false))).parse(input)
}

fn big_number(input: &[u8]) -> IResult<&[u8], &[u8]> {
    recognize((opt(one_of("+-")), digit1)).parse(input)
}

fn verbatim_prefix(input: &[u8]) -> IResult<&[u8], &[u8]> {
    let (rest, (format, _)) = (take(3usize), char(':')).parse(input)?;
    Ok((rest, format))
}

/// A RESP3 boolean: `t` or `f`.
pub(crate) fn parse_bool(input: &[u8]) -> Option<bool> {
    all_consuming(boolean).parse(input).ok().map(|(_, b)| b)
}

/// A RESP3 big number: an optional sign and at least one digit.
pub(crate) fn is_big_number(input: &[u8]) -> bool {
    all_consuming(big_number).parse(input).is_ok()
}

/// The three-byte format at the start of a verbatim string (`txt:...`).
pub(crate) fn verbatim_format(input: &[u8]) -> Option<[u8; 3]> {
    let (_, format) = verbatim_prefix(input).ok()?;
    <[u8; 3]>::try_from(format).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_like_string2ll() {
        let cases: &[(&[u8], Option<i64>)] = &[
            (b"0", Some(0)),
            (b"1", Some(1)),
            (b"-1", Some(-1)),
            (b"1234567890", Some(1234567890)),
            (b"9223372036854775807", Some(i64::MAX)),
            (b"-9223372036854775808", Some(i64::MIN)),
            (b"9223372036854775808", None),
            (b"-9223372036854775809", None),
            (b"99999999999999999999", None),
            (b"", None),
            (b"-", None),
            (b"-0", None),
            (b"00", None),
            (b"01", None),
            (b"+1", None),
            (b" 1", None),
            (b"1 ", None),
            (b"1a", None),
            (b"0x10", None),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_int(input),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn quick_len_agrees_with_parse_int() {
        let cases: &[&[u8]] = &[
            b"0\r",
            b"5\r",
            b"-1\r",
            b"123456789012345678\r",
            b"1234567890123456789\r",
            b"00\r",
            b"-0\r",
            b"01\r",
            b"\r",
            b"-\r",
            b"12",
            b"1a\r",
            b"+1\r",
        ];
        for case in cases {
            let line = &case[..case.len().saturating_sub(1)];
            match quick_len(case, 0) {
                Some((v, cr)) => {
                    assert_eq!(cr, case.len() - 1);
                    assert_eq!(parse_int(line), Some(v), "{case:?}");
                }
                // No answer is always allowed: the general path decides.
                None => assert!(
                    parse_int(line).is_none() || line.len() > 18 || !case.ends_with(b"\r"),
                    "{case:?}"
                ),
            }
        }
    }

    #[test]
    fn doubles() {
        assert_eq!(parse_double(b"1.5"), Some(1.5));
        assert_eq!(parse_double(b"-0.25"), Some(-0.25));
        assert_eq!(parse_double(b"10"), Some(10.0));
        assert_eq!(parse_double(b"1e300"), Some(1e300));
        assert_eq!(parse_double(b"1.5E-3"), Some(1.5e-3));
        assert_eq!(parse_double(b"inf"), Some(f64::INFINITY));
        assert_eq!(parse_double(b"-inf"), Some(f64::NEG_INFINITY));
        assert!(parse_double(b"nan").is_some_and(f64::is_nan));
        assert_eq!(parse_double(b""), None);
        assert_eq!(parse_double(b"abc"), None);
        assert_eq!(parse_double(b"1.5x"), None);
        assert_eq!(parse_double(b"infinity"), None);
    }

    #[test]
    fn booleans_big_numbers_verbatim() {
        assert_eq!(parse_bool(b"t"), Some(true));
        assert_eq!(parse_bool(b"f"), Some(false));
        assert_eq!(parse_bool(b"tt"), None);
        assert_eq!(parse_bool(b""), None);
        assert!(is_big_number(
            b"3492890328409238509324850943850943825024385"
        ));
        assert!(is_big_number(b"-1"));
        assert!(!is_big_number(b"1.0"));
        assert!(!is_big_number(b""));
        assert_eq!(verbatim_format(b"txt:hello"), Some(*b"txt"));
        assert_eq!(verbatim_format(b"mkd:"), Some(*b"mkd"));
        assert_eq!(verbatim_format(b"txthello"), None);
        assert_eq!(verbatim_format(b"tx"), None);
    }
}

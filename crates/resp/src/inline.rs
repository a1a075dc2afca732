//! Splitting an inline command line into arguments, as Redis does.

use bytes::Bytes;

/// Splits one inline command line (without its line end) into arguments,
/// with the rules of Redis's `sdssplitargs`, so `redis-cli`-style and telnet
/// input reads the same as in Redis.
///
/// - Arguments are separated by whitespace.
/// - `"double quotes"` take the escapes `\n`, `\r`, `\t`, `\b`, `\a`,
///   `\xHH` and `\` before any other byte (which stands for itself).
/// - `'single quotes'` take only `\'`.
/// - A closing quote must be followed by whitespace or the end of the line.
/// - A NUL byte ends the line, as it ends a C string.
///
/// Returns `None` for unbalanced quotes (Redis replies
/// `-ERR Protocol error: unbalanced quotes in request`).
///
/// ```
/// use ember_resp::split_args;
/// let args = split_args(br#"SET k "a b\x41" 'it\'s'"#).unwrap();
/// assert_eq!(args, [&b"SET"[..], b"k", b"a bA", b"it's"]);
/// assert!(split_args(b"GET \"k").is_none());
/// ```
pub fn split_args(line: &[u8]) -> Option<Vec<Bytes>> {
    let line = match memchr::memchr(0, line) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let at = |i: usize| line.get(i).copied();
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while at(p).is_some_and(is_space) {
            p += 1;
        }
        if p == line.len() {
            return Some(args);
        }
        let mut current = Vec::new();
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let c = at(p);
            let mut done = false;
            if in_double {
                match c {
                    None => return None,
                    Some(b'\\')
                        if at(p + 1) == Some(b'x')
                            && at(p + 2).is_some_and(|b| b.is_ascii_hexdigit())
                            && at(p + 3).is_some_and(|b| b.is_ascii_hexdigit()) =>
                    {
                        current.push(hex(line[p + 2]) * 16 + hex(line[p + 3]));
                        p += 3;
                    }
                    Some(b'\\') if at(p + 1).is_some() => {
                        p += 1;
                        current.push(match line[p] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                    }
                    Some(b'"') => {
                        if at(p + 1).is_some_and(|b| !is_space(b)) {
                            return None;
                        }
                        done = true;
                    }
                    Some(b) => current.push(b),
                }
            } else if in_single {
                match c {
                    None => return None,
                    Some(b'\\') if at(p + 1) == Some(b'\'') => {
                        p += 1;
                        current.push(b'\'');
                    }
                    Some(b'\'') => {
                        if at(p + 1).is_some_and(|b| !is_space(b)) {
                            return None;
                        }
                        done = true;
                    }
                    Some(b) => current.push(b),
                }
            } else {
                match c {
                    // Redis ends an unquoted argument on these four only,
                    // though it skips all of C's whitespace between arguments.
                    None | Some(b' ' | b'\n' | b'\r' | b'\t') => done = true,
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(b) => current.push(b),
                }
            }
            if c.is_some() {
                p += 1;
            }
            if done {
                break;
            }
        }
        args.push(Bytes::from(current));
    }
}

/// C's `isspace` in the C locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &[u8]) -> Option<Vec<Vec<u8>>> {
        split_args(line).map(|v| v.into_iter().map(|b| b.to_vec()).collect())
    }

    #[test]
    fn table() {
        let ok: &[(&[u8], &[&[u8]])] = &[
            (b"", &[]),
            (b"   ", &[]),
            (b"PING", &[b"PING"]),
            (b"  SET  k   v  ", &[b"SET", b"k", b"v"]),
            (b"SET k \"a b\"", &[b"SET", b"k", b"a b"]),
            (b"SET k 'a b'", &[b"SET", b"k", b"a b"]),
            (b"\"\\x41\\x4a\"", &[b"AJ"]),
            (b"\"\\x4\"", &[b"x4"]),
            (b"\"\\n\\r\\t\\b\\a\\\\\\\"\"", &[b"\n\r\t\x08\x07\\\""]),
            (b"'a\\'b'", &[b"a'b"]),
            (b"'a\\nb'", &[b"a\\nb"]),
            (b"\"\"", &[b""]),
            (b"''", &[b""]),
            (b"a\"b c\" d", &[b"ab c", b"d"]),
            (b"a\x0bb", &[b"a\x0bb"]),
            (b"\x0ba", &[b"a"]),
            (b"a\tb", &[b"a", b"b"]),
            (b"GET k\0 ignored", &[b"GET", b"k"]),
            (b"\"a\" b", &[b"a", b"b"]),
        ];
        for (line, want) in ok {
            let want: Vec<Vec<u8>> = want.iter().map(|a| a.to_vec()).collect();
            assert_eq!(
                split(line),
                Some(want),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        let bad: &[&[u8]] = &[
            b"\"abc",
            b"'abc",
            b"\"a\"b",
            b"'a'b",
            b"\"a\\",
            b"\"a\0\"",
            b"a\"b c\"d",
        ];
        for line in bad {
            assert_eq!(split(line), None, "{:?}", String::from_utf8_lossy(line));
        }
    }
}

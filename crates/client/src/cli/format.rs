//! Replies printed the way `redis-cli` prints them: formatted for a
//! terminal (`cliFormatReplyTTY`) or raw for scripts (`cliFormatReplyRaw`).

use resp::Frame;

/// A reply for a terminal: `"bar"`, `(integer) 3`, `(nil)`, `(error) ...`,
/// numbered arrays indented under their index. Ends with a newline.
pub(crate) fn tty(frame: &Frame, out: &mut Vec<u8>) {
    tty_at(frame, "", out);
}

fn tty_at(frame: &Frame, prefix: &str, out: &mut Vec<u8>) {
    match frame {
        Frame::Error(text) | Frame::BulkError(text) => {
            out.extend_from_slice(b"(error) ");
            out.extend_from_slice(text);
            out.push(b'\n');
        }
        Frame::Simple(text) => {
            out.extend_from_slice(text);
            out.push(b'\n');
        }
        Frame::Integer(n) => out.extend_from_slice(format!("(integer) {n}\n").as_bytes()),
        Frame::Double(d) => out.extend_from_slice(format!("(double) {}\n", double(*d)).as_bytes()),
        Frame::BigNumber(digits) => {
            out.extend_from_slice(b"(big number) ");
            out.extend_from_slice(digits);
            out.push(b'\n');
        }
        Frame::Bulk(bytes) => {
            quote(bytes, out);
            out.push(b'\n');
        }
        Frame::Verbatim { text, .. } => {
            out.extend_from_slice(text);
            out.push(b'\n');
        }
        Frame::Null | Frame::NullBulk | Frame::NullArray => out.extend_from_slice(b"(nil)\n"),
        Frame::Boolean(b) => out.extend_from_slice(if *b { b"(true)\n" } else { b"(false)\n" }),
        Frame::Array(items) | Frame::Push(items) | Frame::Set(items) => {
            let (mark, empty) = match frame {
                Frame::Set(_) => ('~', "(empty set)"),
                Frame::Push(_) => (')', "(empty push)"),
                _ => (')', "(empty array)"),
            };
            if items.is_empty() {
                out.extend_from_slice(empty.as_bytes());
                out.push(b'\n');
                return;
            }
            let width = digits(items.len());
            let inner = format!("{prefix}{}", " ".repeat(width + 2));
            for (i, item) in items.iter().enumerate() {
                // The parent already wrote this line's prefix and index.
                let lead = if i == 0 { "" } else { prefix };
                out.extend_from_slice(format!("{lead}{:>width$}{mark} ", i + 1).as_bytes());
                tty_at(item, &inner, out);
            }
        }
        Frame::Map(pairs) => {
            if pairs.is_empty() {
                out.extend_from_slice(b"(empty hash)\n");
                return;
            }
            let width = digits(pairs.len());
            let inner = format!("{prefix}{}", " ".repeat(width + 2));
            for (i, (key, value)) in pairs.iter().enumerate() {
                let lead = if i == 0 { "" } else { prefix };
                out.extend_from_slice(format!("{lead}{:>width$}# ", i + 1).as_bytes());
                tty_at(key, &inner, out);
                out.pop();
                out.extend_from_slice(b" => ");
                tty_at(value, &inner, out);
            }
        }
        Frame::Attribute { frame, .. } => tty_at(frame, prefix, out),
        // `Frame` may grow; show what it is rather than nothing.
        other => out.extend_from_slice(format!("{other:?}\n").as_bytes()),
    }
}

/// A reply for a script: strings as they are, integers as digits, nothing
/// for nil, one array element per line. No final newline: the caller adds
/// one after each reply, as `redis-cli` does.
pub(crate) fn raw(frame: &Frame, out: &mut Vec<u8>) {
    match frame {
        Frame::Error(text) | Frame::BulkError(text) => {
            out.extend_from_slice(text);
            out.push(b'\n');
        }
        Frame::Simple(b) | Frame::Bulk(b) | Frame::BigNumber(b) => out.extend_from_slice(b),
        Frame::Verbatim { text, .. } => out.extend_from_slice(text),
        Frame::Integer(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Frame::Double(d) => out.extend_from_slice(double(*d).as_bytes()),
        Frame::Null | Frame::NullBulk | Frame::NullArray => {}
        Frame::Boolean(b) => out.extend_from_slice(if *b { b"(true)" } else { b"(false)" }),
        Frame::Array(items) | Frame::Push(items) | Frame::Set(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b'\n');
                }
                raw(item, out);
            }
        }
        Frame::Map(pairs) => {
            for (i, (key, value)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(b'\n');
                }
                raw(key, out);
                out.push(b' ');
                raw(value, out);
            }
        }
        Frame::Attribute { frame, .. } => raw(frame, out),
        other => out.extend_from_slice(format!("{other:?}").as_bytes()),
    }
}

/// A string in double quotes with C escapes, as Redis's `sdscatrepr`.
pub(crate) fn quote(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in bytes {
        match b {
            b'\\' | b'"' => out.extend_from_slice(&[b'\\', b]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

fn double(d: f64) -> String {
    if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        d.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(frame: &Frame) -> (String, String) {
        let (mut t, mut r) = (Vec::new(), Vec::new());
        tty(frame, &mut t);
        raw(frame, &mut r);
        r.push(b'\n');
        (String::from_utf8(t).unwrap(), String::from_utf8(r).unwrap())
    }

    fn int(n: i64) -> Frame {
        Frame::Integer(n)
    }

    // Expected texts are redis-cli 7.0's output for the same replies.
    #[test]
    fn like_redis_cli() {
        assert_eq!(
            show(&Frame::bulk("bar")),
            ("\"bar\"\n".into(), "bar\n".into())
        );
        assert_eq!(show(&int(3)), ("(integer) 3\n".into(), "3\n".into()));
        assert_eq!(show(&Frame::NullBulk), ("(nil)\n".into(), "\n".into()));
        assert_eq!(show(&Frame::simple("OK")), ("OK\n".into(), "OK\n".into()));
        assert_eq!(
            show(&Frame::error("ERR bad")),
            ("(error) ERR bad\n".into(), "ERR bad\n\n".into())
        );
        assert_eq!(
            show(&Frame::Array(vec![])),
            ("(empty array)\n".into(), "\n".into())
        );
        let nested = Frame::Array(vec![
            int(1),
            Frame::bulk("a"),
            Frame::Array(vec![int(2), Frame::Array(vec![])]),
            Frame::Array(vec![]),
            Frame::Array(vec![
                Frame::bulk("x"),
                Frame::Array(vec![Frame::bulk("y"), Frame::bulk("z")]),
            ]),
        ]);
        assert_eq!(
            show(&nested).0,
            "1) (integer) 1\n2) \"a\"\n3) 1) (integer) 2\n   2) (empty array)\n\
             4) (empty array)\n5) 1) \"x\"\n   2) 1) \"y\"\n      2) \"z\"\n"
        );
        assert_eq!(show(&nested).1, "1\na\n2\n\n\nx\ny\nz\n");
        let wide = Frame::Array((1..=11).map(|i| Frame::Array(vec![int(i)])).collect());
        let text = show(&wide).0;
        assert!(
            text.starts_with(" 1) 1) (integer) 1\n 2) 1) (integer) 2\n"),
            "{text}"
        );
        assert!(text.ends_with("11) 1) (integer) 11\n"), "{text}");
        let inner_wide = Frame::Array(vec![Frame::Array((1..=10).map(int).collect())]);
        assert!(
            show(&inner_wide)
                .0
                .starts_with("1)  1) (integer) 1\n    2) (integer) 2\n"),
        );
    }

    #[test]
    fn escapes() {
        let mut out = Vec::new();
        quote(b"a\"b\\c\n\r\t\x01\x7f\xc3\xa9 z\x07\x08", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""a\"b\\c\n\r\t\x01\x7f\xc3\xa9 z\a\b""#
        );
    }

    #[test]
    fn resp3_shapes() {
        let map = Frame::Map(vec![(Frame::bulk("k"), int(1))]);
        assert_eq!(
            show(&map),
            ("1# \"k\" => (integer) 1\n".into(), "k 1\n".into())
        );
        assert_eq!(show(&Frame::Boolean(true)).0, "(true)\n");
        assert_eq!(show(&Frame::Double(1.5)).0, "(double) 1.5\n");
        assert_eq!(show(&Frame::Set(vec![int(1)])).0, "1~ (integer) 1\n");
    }
}

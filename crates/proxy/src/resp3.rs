//! RESP3 for the proxy's clients (`HELLO 3`), from the fleet's RESP2
//! answers.
//!
//! The fleet's client speaks RESP2 to every node, so an answer arrives in
//! RESP2's shapes; a RESP3 client must get what Redis 7.0 itself would send
//! it. The difference is per command, so [`Shape::of`] reads the command
//! (and the options that change its answer, such as WITHSCORES), and
//! [`write`] writes the RESP2 frame in RESP3 by that shape: nulls as `_`,
//! HGETALL and CONFIG GET as maps, SMEMBERS and the set algebra as sets,
//! scores as doubles (written with the very text the node printed, which
//! is Redis's `%.17g`), pairs where Redis pairs them (WITHSCORES,
//! WITHVALUES, ZPOPMIN with a count), and the doctors' texts as verbatim
//! strings. EXEC's answer is each queued command's, shaped in turn.
//!
//! Streams' answers (XINFO's maps, XREAD's map of keys) are passed through
//! with only their nulls changed.

use bytes::{BufMut, Bytes, BytesMut};
use client::Frame;

/// How a command's RESP2 answer becomes its RESP3 answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    /// Only nulls change.
    Plain,
    /// A flat array of keys and values is a map.
    Map,
    /// An array is a set.
    Set,
    /// A bulk string is a double.
    Double,
    /// An array of bulk strings (or nils) is an array of doubles.
    Doubles,
    /// A flat array of fields and values is an array of pairs.
    Pairs,
    /// A flat array of members and scores is an array of [member, double].
    ScoredPairs,
    /// `[member, score]` is `[member, double]` (ZPOPMIN without a count).
    Scored,
    /// `[key, member, score]` (BZPOPMIN).
    KeyScored,
    /// `[key, [[member, score], ...]]` (ZMPOP, BZMPOP).
    KeyScoredPairs,
    /// A bulk string is a verbatim text.
    Verbatim,
    /// EXEC: each element by its command's shape.
    Exec(Vec<Shape>),
}

fn eq(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

impl Shape {
    /// The shape of the answer to `args` (name first).
    pub(crate) fn of<A: AsRef<[u8]>>(args: &[A]) -> Shape {
        let Some(name) = args.first().map(AsRef::as_ref) else {
            return Shape::Plain;
        };
        let has = |word: &str| args.iter().skip(1).any(|a| eq(a.as_ref(), word));
        let sub = |word: &str| args.get(1).is_some_and(|a| eq(a.as_ref(), word));
        let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
        match lower.as_str() {
            "hgetall" => Shape::Map,
            "config" if sub("get") => Shape::Map,
            "smembers" | "sinter" | "sunion" | "sdiff" => Shape::Set,
            "spop" if args.len() == 3 => Shape::Set,
            "zscore" | "zincrby" => Shape::Double,
            "zadd" if has("incr") => Shape::Double,
            "zmscore" => Shape::Doubles,
            "hrandfield" if has("withvalues") => Shape::Pairs,
            "zrange" | "zrangebyscore" | "zrevrange" | "zrevrangebyscore" | "zrandmember"
            | "zunion" | "zinter" | "zdiff"
                if has("withscores") =>
            {
                Shape::ScoredPairs
            }
            "zpopmin" | "zpopmax" if args.len() == 2 => Shape::Scored,
            "zpopmin" | "zpopmax" => Shape::ScoredPairs,
            "bzpopmin" | "bzpopmax" => Shape::KeyScored,
            "zmpop" | "bzmpop" => Shape::KeyScoredPairs,
            "lolwut" => Shape::Verbatim,
            "memory" | "latency" if sub("doctor") => Shape::Verbatim,
            _ => Shape::Plain,
        }
    }
}

/// Writes `frame`, a RESP2 answer, in RESP3 as `shape` says.
pub(crate) fn write(out: &mut BytesMut, frame: &Frame, shape: &Shape) {
    if frame.is_error() {
        frame.encode(out);
        return;
    }
    match (shape, frame) {
        (_, Frame::NullBulk | Frame::NullArray) => out.put_slice(b"_\r\n"),
        (Shape::Map, Frame::Array(items)) if items.len() % 2 == 0 => {
            header(out, b'%', items.len() / 2);
            items.iter().for_each(|f| plain(out, f));
        }
        (Shape::Set, Frame::Array(items)) => {
            header(out, b'~', items.len());
            items.iter().for_each(|f| plain(out, f));
        }
        (Shape::Double, _) => double(out, frame),
        (Shape::Doubles, Frame::Array(items)) => {
            header(out, b'*', items.len());
            items.iter().for_each(|f| double(out, f));
        }
        (Shape::Pairs, Frame::Array(items)) if items.len() % 2 == 0 => {
            header(out, b'*', items.len() / 2);
            for pair in items.chunks(2) {
                header(out, b'*', 2);
                plain(out, &pair[0]);
                plain(out, &pair[1]);
            }
        }
        (Shape::ScoredPairs, Frame::Array(items)) if items.len() % 2 == 0 => {
            scored_pairs(out, items);
        }
        (Shape::Scored, Frame::Array(items)) if items.len() == 2 => {
            header(out, b'*', 2);
            plain(out, &items[0]);
            double(out, &items[1]);
        }
        (Shape::KeyScored, Frame::Array(items)) if items.len() == 3 => {
            header(out, b'*', 3);
            plain(out, &items[0]);
            plain(out, &items[1]);
            double(out, &items[2]);
        }
        (Shape::KeyScoredPairs, Frame::Array(items)) if items.len() == 2 => {
            header(out, b'*', 2);
            plain(out, &items[0]);
            // RESP2 already pairs them: [[member, score], ...].
            match &items[1] {
                Frame::Array(pairs) => {
                    header(out, b'*', pairs.len());
                    for pair in pairs {
                        match pair {
                            Frame::Array(p) if p.len() == 2 => {
                                header(out, b'*', 2);
                                plain(out, &p[0]);
                                double(out, &p[1]);
                            }
                            other => plain(out, other),
                        }
                    }
                }
                other => plain(out, other),
            }
        }
        (Shape::Verbatim, Frame::Bulk(text)) => verbatim(out, text),
        (Shape::Exec(shapes), Frame::Array(items)) => {
            header(out, b'*', items.len());
            for (i, item) in items.iter().enumerate() {
                write(out, item, shapes.get(i).unwrap_or(&Shape::Plain));
            }
        }
        _ => plain(out, frame),
    }
}

fn scored_pairs(out: &mut BytesMut, items: &[Frame]) {
    header(out, b'*', items.len() / 2);
    for pair in items.chunks(2) {
        header(out, b'*', 2);
        plain(out, &pair[0]);
        double(out, &pair[1]);
    }
}

/// A RESP2 frame in RESP3 with nothing but its nulls changed.
fn plain(out: &mut BytesMut, frame: &Frame) {
    match frame {
        Frame::NullBulk | Frame::NullArray => out.put_slice(b"_\r\n"),
        Frame::Array(items) => {
            header(out, b'*', items.len());
            items.iter().for_each(|f| plain(out, f));
        }
        other => other.encode(out),
    }
}

/// A score: the node's text, which is Redis's own double text, as a RESP3
/// double.
fn double(out: &mut BytesMut, frame: &Frame) {
    match frame {
        Frame::Bulk(text) => {
            out.put_u8(b',');
            out.put_slice(text);
            out.put_slice(b"\r\n");
        }
        other => plain(out, other),
    }
}

fn verbatim(out: &mut BytesMut, text: &Bytes) {
    header(out, b'=', text.len() + 4);
    out.put_slice(b"txt:");
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

fn header(out: &mut BytesMut, kind: u8, n: usize) {
    out.put_u8(kind);
    out.put_slice(n.to_string().as_bytes());
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shaped(args: &[&str], frame: Frame) -> String {
        let mut out = BytesMut::new();
        write(&mut out, &frame, &Shape::of(args));
        String::from_utf8(out.to_vec()).unwrap()
    }

    fn bulks(items: &[&str]) -> Frame {
        Frame::Array(items.iter().map(|s| Frame::bulk(s.to_string())).collect())
    }

    #[test]
    fn shapes_follow_the_command_and_its_options() {
        assert_eq!(Shape::of(&["ZRANGE", "z", "0", "-1"]), Shape::Plain);
        assert_eq!(
            Shape::of(&["zrange", "z", "0", "-1", "withscores"]),
            Shape::ScoredPairs
        );
        assert_eq!(Shape::of(&["ZPOPMIN", "z"]), Shape::Scored);
        assert_eq!(Shape::of(&["ZPOPMIN", "z", "2"]), Shape::ScoredPairs);
        assert_eq!(Shape::of(&["SPOP", "s"]), Shape::Plain);
        assert_eq!(Shape::of(&["SPOP", "s", "2"]), Shape::Set);
        assert_eq!(Shape::of(&["CONFIG", "GET", "x"]), Shape::Map);
        assert_eq!(Shape::of(&["CONFIG", "SET", "x", "y"]), Shape::Plain);
        assert_eq!(Shape::of::<&str>(&[]), Shape::Plain);
    }

    #[test]
    fn answers_take_redis_s_resp3_shapes() {
        assert_eq!(shaped(&["GET", "k"], Frame::NullBulk), "_\r\n");
        assert_eq!(
            shaped(&["HGETALL", "h"], bulks(&["f", "v"])),
            "%1\r\n$1\r\nf\r\n$1\r\nv\r\n"
        );
        assert_eq!(
            shaped(&["SMEMBERS", "s"], bulks(&["a"])),
            "~1\r\n$1\r\na\r\n"
        );
        assert_eq!(
            shaped(&["ZSCORE", "z", "m"], Frame::bulk("0.10000000000000001")),
            ",0.10000000000000001\r\n"
        );
        assert_eq!(
            shaped(
                &["ZMSCORE", "z", "a", "b"],
                Frame::Array(vec![Frame::bulk("5"), Frame::NullBulk])
            ),
            "*2\r\n,5\r\n_\r\n"
        );
        assert_eq!(
            shaped(
                &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
                bulks(&["c", "3", "d", "4"])
            ),
            "*2\r\n*2\r\n$1\r\nc\r\n,3\r\n*2\r\n$1\r\nd\r\n,4\r\n"
        );
        assert_eq!(
            shaped(&["ZPOPMIN", "z"], bulks(&["a", "1"])),
            "*2\r\n$1\r\na\r\n,1\r\n"
        );
        assert_eq!(
            shaped(
                &["ZMPOP", "1", "z", "MIN"],
                Frame::Array(vec![
                    Frame::bulk("z"),
                    Frame::Array(vec![bulks(&["c", "3"])])
                ])
            ),
            "*2\r\n$1\r\nz\r\n*1\r\n*2\r\n$1\r\nc\r\n,3\r\n"
        );
        assert_eq!(
            shaped(&["BZPOPMIN", "z", "1"], bulks(&["z", "d", "4"])),
            "*3\r\n$1\r\nz\r\n$1\r\nd\r\n,4\r\n"
        );
        assert_eq!(shaped(&["BZPOPMIN", "z", "1"], Frame::NullArray), "_\r\n");
        assert_eq!(
            shaped(&["HRANDFIELD", "h", "1", "WITHVALUES"], bulks(&["f", "v"])),
            "*1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
        );
        assert_eq!(
            shaped(&["MEMORY", "DOCTOR"], Frame::bulk("hi")),
            "=6\r\ntxt:hi\r\n"
        );
        assert_eq!(
            shaped(&["ZADD", "z", "1", "m"], Frame::error("WRONGTYPE x")),
            "-WRONGTYPE x\r\n"
        );
    }

    #[test]
    fn exec_shapes_each_answer_by_its_command() {
        let mut out = BytesMut::new();
        let shapes = Shape::Exec(vec![Shape::of(&["HGETALL", "h"]), Shape::of(&["GET", "x"])]);
        write(
            &mut out,
            &Frame::Array(vec![bulks(&["f", "v"]), Frame::NullBulk]),
            &shapes,
        );
        assert_eq!(&out[..], b"*2\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n_\r\n");
    }
}

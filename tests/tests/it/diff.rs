//! The differential harness: a real redis-server 7.0 and an Ember server
//! started alike, the same commands sent to both, the replies compared.
//!
//! Most replies are compared byte for byte. Some are not Redis's to order
//! (the members of a hashtable set, a big hash's fields, a scan's page,
//! random picks), so a comparison has a [`Mode`]: a script line may name
//! one (`sorted HKEYS h`), and each test file gives a [`Setup::rule`] that
//! picks one from the command when the line names none (the set commands
//! that return members in their table's order, say). A mode only ever
//! forgets order or content that Redis leaves open; whatever it keeps is
//! compared byte for byte.

use std::net::TcpStream;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use ember_tests::{EmberServer, RedisServer, call};
use resp::Frame;

/// How two replies to the same command are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Byte for byte.
    Exact,
    /// Every array's and set's elements (and a map's pairs) as a multiset,
    /// at every depth.
    Sorted,
    /// A flat array of field, value, field, value... as a multiset of
    /// pairs (any other reply as [`Mode::Sorted`]).
    Pairs,
    /// The frame's structure only: bulk strings replaced by a placeholder
    /// (random picks, whose shape is all two servers share).
    Shape,
    /// A scan's page, `[cursor, elements]`: the cursor byte for byte, the
    /// elements as [`Mode::Sorted`].
    ScanSorted,
    /// A scan's page, `[cursor, elements]`: the cursor byte for byte, the
    /// elements as [`Mode::Pairs`] (HSCAN, ZSCAN).
    ScanPairs,
    /// Not compared (HELLO, whose reply has the client id).
    Ignore,
}

/// The mode for every line that names none.
pub(crate) fn exact(_args: &[&[u8]]) -> Mode {
    Mode::Exact
}

/// How a [`Pair`] starts, and what each [`Pair::check`] starts from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setup {
    /// Extra `redis-server` arguments.
    pub(crate) redis: &'static [&'static str],
    /// Ember's configuration lines.
    pub(crate) ember: &'static [&'static str],
    /// If set, Ember gets a private `dir` (for DEBUG RELOAD's file) whose
    /// name starts `ember-<this>-`, removed when the pair is dropped.
    pub(crate) dir: Option<&'static str>,
    /// Commands [`Pair::reset`] sends both after `RESET` and `FLUSHALL`:
    /// the configuration each script may change and expects as it was.
    pub(crate) reset: &'static [&'static str],
    /// The comparison for a line that names none, from its arguments.
    pub(crate) rule: fn(&[&[u8]]) -> Mode,
}

impl Setup {
    /// Both servers with their defaults, every reply compared byte for
    /// byte unless its line says otherwise.
    pub(crate) const PLAIN: Setup = Setup {
        redis: &[],
        ember: &[],
        dir: None,
        reset: &[],
        rule: exact,
    };
}

/// A redis-server and an Ember server, one connection to each.
pub(crate) struct Pair {
    // The servers go first when dropped, as the connections did not keep
    // them from stopping before.
    redis_server: RedisServer,
    ember_server: EmberServer,
    /// The connection to redis-server.
    pub(crate) redis: TcpStream,
    /// The connection to Ember.
    pub(crate) ember: TcpStream,
    dir: Option<PathBuf>,
    reset: &'static [&'static str],
    rule: fn(&[&[u8]]) -> Mode,
}

impl Pair {
    /// Starts both servers as `setup` says and connects to each.
    pub(crate) fn start(setup: &Setup) -> Pair {
        let redis_server = RedisServer::start(setup.redis);
        let mut ember: Vec<String> = setup.ember.iter().map(|l| l.to_string()).collect();
        let dir = setup.dir.map(|name| {
            static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("ember-{name}-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a temporary directory");
            ember.push(format!("dir {}", dir.display()));
            dir
        });
        let ember: Vec<&str> = ember.iter().map(String::as_str).collect();
        let ember_server = EmberServer::start(&ember);
        // Some cases make redis-server work for seconds (SETBIT at the
        // last bit zeroes 512 MB: 1.7 s on an idle machine, more than the
        // usual 5 s bound on a busy one): its replies get a longer bound.
        let patient = |conn: TcpStream| {
            conn.set_read_timeout(Some(std::time::Duration::from_secs(60)))
                .expect("set read timeout");
            conn
        };
        Pair {
            redis: patient(redis_server.connect()),
            ember: patient(ember_server.connect()),
            redis_server,
            ember_server,
            dir,
            reset: setup.reset,
            rule: setup.rule,
        }
    }

    /// A new connection to redis-server.
    pub(crate) fn connect_redis(&self) -> TcpStream {
        self.redis_server.connect()
    }

    /// A new connection to Ember.
    pub(crate) fn connect_ember(&self) -> TcpStream {
        self.ember_server.connect()
    }

    /// Both back to RESP2, database 0, an empty keyspace, and the
    /// [`Setup::reset`] commands.
    pub(crate) fn reset(&mut self) {
        for conn in [&mut self.redis, &mut self.ember] {
            call(conn, &[b"RESET"]);
            call(conn, &[b"FLUSHALL"]);
            for line in self.reset {
                let args = words(line);
                call(conn, &slices(&args));
            }
        }
    }

    /// One command on both: (redis's reply, ember's reply), raw.
    pub(crate) fn both(&mut self, args: &[&[u8]]) -> (Bytes, Bytes) {
        (call(&mut self.redis, args), call(&mut self.ember, args))
    }

    /// One command on both: their replies as `mode` compares them (see
    /// [`normalize`]).
    pub(crate) fn both_as(&mut self, mode: Mode, args: &[&[u8]]) -> (Bytes, Bytes) {
        let (r, e) = self.both(args);
        (normalize(mode, &r), normalize(mode, &e))
    }

    /// Runs `lines` on both from a fresh state ([`Pair::reset`]) and fails
    /// at the first reply that differs. A line may start with the mode to
    /// compare its reply in: `sorted `, `pairs `, `shape `, or `~ ` for
    /// none; otherwise [`Setup::rule`] picks it. `scanall SCAN KEY
    /// [options]` runs the scan command `SCAN` (HSCAN, SSCAN, ZSCAN) from
    /// cursor 0 to its end and compares what it found (see [`scan_all`]).
    pub(crate) fn check(&mut self, lines: &[&str]) {
        self.reset();
        for (i, line) in lines.iter().enumerate() {
            let named = [
                ("sorted ", Mode::Sorted),
                ("pairs ", Mode::Pairs),
                ("shape ", Mode::Shape),
                ("~ ", Mode::Ignore),
            ]
            .iter()
            .find_map(|(p, m)| line.strip_prefix(p).map(|t| (*m, t)));
            let text = named.map_or(*line, |(_, t)| t);
            let args = words(text);
            let args = slices(&args);
            let mode = named.map_or_else(|| (self.rule)(&args), |(m, _)| m);
            let (r, e) = if let Some(scan) = line.strip_prefix("scanall ") {
                let scan = words(scan);
                let scan = slices(&scan);
                let r = scan_all(&mut self.redis, &scan);
                let e = scan_all(&mut self.ember, &scan);
                (format!("{r:?}").into(), format!("{e:?}").into())
            } else {
                self.both(&args)
            };
            if mode != Mode::Ignore && normalize(mode, &r) != normalize(mode, &e) {
                panic!(
                    "replies differ at line {} of:\n  {}\nredis: {:?}\nember: {:?}",
                    i + 1,
                    lines.join("\n  "),
                    String::from_utf8_lossy(&r),
                    String::from_utf8_lossy(&e)
                );
            }
        }
    }

    /// Sends each of `lines` to both, replies unread (setup, CONFIG SET).
    pub(crate) fn run(&mut self, lines: &[&str]) {
        for line in lines {
            let args = words(line);
            self.both(&slices(&args));
        }
    }

    /// Fails unless OBJECT ENCODING answers alike for each of `keys`.
    pub(crate) fn same_encodings(&mut self, keys: &[&[u8]], context: &str) {
        for key in keys {
            let (r, e) = self.both(&[b"OBJECT", b"ENCODING", key]);
            assert_eq!(r, e, "{context}: {}", String::from_utf8_lossy(key));
        }
    }

    /// Under each of `settings` (lines for [`Pair::run`], CONFIG SETs of
    /// the encoding limits), DEBUG RELOAD on both, then
    /// [`Pair::same_encodings`] of `keys`: a value loaded from a file takes
    /// the encoding the limits then in force give it.
    pub(crate) fn reload_under(&mut self, settings: &[&[&str]], keys: &[&[u8]]) {
        for setting in settings {
            self.run(setting);
            let (r, e) = self.both(&[b"DEBUG", b"RELOAD"]);
            assert_eq!(r, e, "DEBUG RELOAD under {setting:?}");
            self.same_encodings(keys, &format!("DEBUG RELOAD under {setting:?}"));
        }
    }

    /// redis-server's DUMP of each of `sources`, restored on both as `copy`
    /// under each of `settings` (as for [`Pair::reload_under`]): both say
    /// OK, and the copy's encoding is the same on both.
    pub(crate) fn restore_under(&mut self, settings: &[&[&str]], sources: &[&[u8]]) {
        for source in sources {
            let (payload, _) = self.both(&[b"DUMP", source]);
            let Frame::Bulk(payload) = decode(&payload) else {
                panic!("DUMP replied {payload:?}");
            };
            for setting in settings {
                self.run(setting);
                let context = format!(
                    "RESTORE of {} under {setting:?}",
                    String::from_utf8_lossy(source)
                );
                let (r, e) = self.both(&[b"RESTORE", b"copy", b"0", &payload, b"REPLACE"]);
                assert_eq!(
                    (&r[..], &e[..]),
                    (&b"+OK\r\n"[..], &b"+OK\r\n"[..]),
                    "{context}"
                );
                let (r, e) = self.both(&[b"OBJECT", b"ENCODING", b"copy"]);
                assert_eq!(r, e, "{context}");
            }
        }
    }

    /// From CONFIG RESETSTAT on, runs each of `lines` on both and fails
    /// when INFO `section`'s `fields` differ after it.
    pub(crate) fn check_info(&mut self, section: &str, fields: &[&str], lines: &[&str]) {
        self.both(&[b"CONFIG", b"RESETSTAT"]);
        for line in lines {
            let args = words(line);
            self.both(&slices(&args));
            let (r, e) = self.both(&[b"INFO", section.as_bytes()]);
            let [r, e] = [r, e].map(|info| {
                fields
                    .iter()
                    .map(|field| info_field(&info, field))
                    .collect::<Vec<_>>()
            });
            assert_eq!(r, e, "{fields:?} after {line}: redis, then ember");
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A line's arguments, split as redis-cli splits them (quotes allowed).
pub(crate) fn words(text: &str) -> Vec<Vec<u8>> {
    resp::split_args(text.as_bytes())
        .expect("balanced quotes")
        .into_iter()
        .map(|a| a.to_vec())
        .collect()
}

/// Borrows each of `args`, as [`call`] takes them.
pub(crate) fn slices(args: &[Vec<u8>]) -> Vec<&[u8]> {
    args.iter().map(Vec::as_slice).collect()
}

/// The one whole frame in a raw reply.
pub(crate) fn decode(reply: &[u8]) -> Frame {
    let mut buf = BytesMut::from(reply);
    resp::decode(&mut buf)
        .expect("a valid reply")
        .expect("a whole reply")
}

/// A frame's bytes on the wire.
pub(crate) fn encode(frame: &Frame) -> Bytes {
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    out.freeze()
}

/// The value of `name` in an INFO reply; fails if it has none.
pub(crate) fn info_field(info: &[u8], name: &str) -> String {
    String::from_utf8_lossy(info)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} in INFO"))
        .trim()
        .to_owned()
}

/// A raw reply as `mode` compares it: the same bytes for [`Mode::Exact`]
/// and [`Mode::Ignore`], otherwise the frame normalized and encoded again.
pub(crate) fn normalize(mode: Mode, reply: &[u8]) -> Bytes {
    match mode {
        Mode::Exact | Mode::Ignore => Bytes::copy_from_slice(reply),
        Mode::Sorted => encode(&sorted(decode(reply))),
        Mode::Pairs => encode(&pairs(decode(reply))),
        Mode::Shape => encode(&shape(decode(reply))),
        Mode::ScanSorted => encode(&scan_page(decode(reply), sorted)),
        Mode::ScanPairs => encode(&scan_page(decode(reply), pairs)),
    }
}

/// Arrays, sets and maps with their elements in one order (by their
/// encoding), at every depth.
fn sorted(frame: Frame) -> Frame {
    let sort = |items: Vec<Frame>| {
        let mut items: Vec<Frame> = items.into_iter().map(sorted).collect();
        items.sort_by_key(encode);
        items
    };
    match frame {
        Frame::Array(items) => Frame::Array(sort(items)),
        Frame::Set(items) => Frame::Set(sort(items)),
        Frame::Map(pairs) => {
            let mut pairs: Vec<(Frame, Frame)> = pairs
                .into_iter()
                .map(|(k, v)| (sorted(k), sorted(v)))
                .collect();
            pairs.sort_by_key(|(k, v)| (encode(k), encode(v)));
            Frame::Map(pairs)
        }
        other => other,
    }
}

/// A flat array of an even length with its pairs in one order; anything
/// else [`sorted`].
fn pairs(frame: Frame) -> Frame {
    match frame {
        Frame::Array(items) if items.len() % 2 == 0 => {
            let mut pairs: Vec<Vec<Frame>> = items.chunks(2).map(<[Frame]>::to_vec).collect();
            pairs.sort_by_key(|p| (encode(&p[0]), encode(&p[1])));
            Frame::Array(pairs.into_iter().flatten().collect())
        }
        other => sorted(other),
    }
}

/// Bulk strings replaced by a placeholder, arrays kept in shape.
fn shape(frame: Frame) -> Frame {
    match frame {
        Frame::Bulk(_) => Frame::Bulk(Bytes::from_static(b"x")),
        Frame::Array(items) => Frame::Array(items.into_iter().map(shape).collect()),
        other => other,
    }
}

/// A scan's page with its cursor kept and `elements` applied to its
/// elements; anything but a two-element array (an error) as it is.
fn scan_page(frame: Frame, elements: fn(Frame) -> Frame) -> Frame {
    match frame {
        Frame::Array(mut parts) if parts.len() == 2 => {
            let found = parts.pop().map_or(Frame::Null, elements);
            parts.push(found);
            Frame::Array(parts)
        }
        other => other,
    }
}

/// Runs `scan` (`HSCAN key [options]`, or SSCAN, ZSCAN) from cursor 0
/// until it ends: what it found, as groups of bulk strings (pairs for
/// HSCAN and ZSCAN, single members for SSCAN), sorted, duplicates removed
/// (a scan may return an element twice).
pub(crate) fn scan_all(conn: &mut TcpStream, scan: &[&[u8]]) -> Vec<Vec<Bytes>> {
    let [command, key, options @ ..] = scan else {
        panic!("scanall needs a command and a key");
    };
    let group = if command.eq_ignore_ascii_case(b"SSCAN") {
        1
    } else {
        2
    };
    let mut cursor = b"0".to_vec();
    let mut found = Vec::new();
    for _ in 0..100_000 {
        let mut argv: Vec<&[u8]> = vec![command, key, &cursor];
        argv.extend(options);
        let Frame::Array(reply) = decode(&call(conn, &argv)) else {
            panic!("{} replied with no array", String::from_utf8_lossy(command));
        };
        let [Frame::Bulk(next), Frame::Array(items)] = &reply[..] else {
            panic!("{} replied {reply:?}", String::from_utf8_lossy(command));
        };
        for chunk in items.chunks(group) {
            let strings: Option<Vec<Bytes>> = chunk
                .iter()
                .map(|f| match f {
                    Frame::Bulk(b) => Some(b.clone()),
                    _ => None,
                })
                .collect();
            match strings {
                Some(strings) if strings.len() == group => found.push(strings),
                _ => panic!("not a group of {group} bulk strings: {chunk:?}"),
            }
        }
        cursor = next.to_vec();
        if cursor == b"0" {
            found.sort();
            found.dedup();
            return found;
        }
    }
    panic!("{} never ended", String::from_utf8_lossy(command));
}

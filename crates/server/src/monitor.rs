//! MONITOR: every command the server runs, as one line to each client that
//! asked, in Redis's format:
//! `+1733551234.123456 [0 127.0.0.1:50312] "set" "k" "v"`.
//!
//! A command is shown after it ran (from `cmd::call`, so the commands of
//! EXEC and of scripts too, each in its turn), except EVAL, EVALSHA and
//! FCALL (and their read-only forms), shown before, so that what their
//! scripts run follows them (`[0 lua]`), and administrative commands,
//! never shown; passwords are `(redacted)`, as Redis redacts them. The
//! lines go through the monitor's pub/sub queue as raw frames, so they
//! leave with its other output and under the same limits.
//!
//! The cost when nobody monitors: one relaxed load per command.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use resp::Request;

use crate::client::ClientInfo;
use crate::server::Shared;

/// The clients in MONITOR mode.
#[derive(Debug, Default)]
pub(crate) struct Monitors {
    /// How many there are: the per-command test.
    count: AtomicUsize,
    list: Mutex<Vec<Arc<ClientInfo>>>,
}

impl Monitors {
    /// Whether anybody monitors.
    #[inline]
    pub(crate) fn active(&self) -> bool {
        self.count.load(Ordering::Relaxed) != 0
    }

    /// Adds `client`; false if it monitors already.
    pub(crate) fn add(&self, client: &Arc<ClientInfo>) -> bool {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        if list.iter().any(|c| c.id == client.id) {
            return false;
        }
        list.push(client.clone());
        self.count.store(list.len(), Ordering::Relaxed);
        true
    }

    /// Removes client `id` (RESET, or its connection closing); whether it
    /// was there.
    pub(crate) fn remove(&self, id: u64) -> bool {
        if !self.active() {
            return false;
        }
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let before = list.len();
        list.retain(|c| c.id != id);
        self.count.store(list.len(), Ordering::Relaxed);
        list.len() != before
    }

    /// Sends `req`, run by `from` in database `db` (`None`: by a script),
    /// to every monitor.
    pub(crate) fn feed(
        &self,
        shared: &Shared,
        from: Option<&ClientInfo>,
        db: usize,
        req: &Request,
    ) {
        let line = Bytes::from(line(from, db, req, crate::server::now_us()));
        let monitors: Vec<Arc<ClientInfo>> =
            self.list.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for monitor in monitors {
            shared.pubsub.push_frame(&monitor.pubsub, line.clone());
        }
    }
}

/// One MONITOR line: the time in seconds and microseconds, the database
/// and who ran the command (`lua` for a script), and each argument quoted
/// as Redis's `sdscatrepr` quotes it, secrets redacted.
fn line(from: Option<&ClientInfo>, db: usize, req: &Request, now_us: i64) -> Vec<u8> {
    let mut out = String::with_capacity(64 + req.iter().map(<[u8]>::len).sum::<usize>());
    let _ = write!(
        out,
        "+{}.{:06} [{db} ",
        now_us.div_euclid(1_000_000),
        now_us.rem_euclid(1_000_000)
    );
    match from {
        Some(client) => {
            let _ = write!(out, "{}] ", client.addr);
        }
        None => out.push_str("lua] "),
    }
    let redacted = redacted(req);
    for (i, arg) in req.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if redacted.contains(&i) {
            out.push_str("\"(redacted)\"");
        } else {
            crate::reply::repr(&mut out, arg);
        }
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// The arguments Redis hides from monitors: AUTH's, HELLO's after AUTH,
/// MIGRATE's after AUTH or AUTH2.
fn redacted(req: &Request) -> Vec<usize> {
    let name = req.get(0).unwrap_or_default();
    let is = |arg: &[u8], word: &str| arg.eq_ignore_ascii_case(word.as_bytes());
    let mut hidden = Vec::new();
    if is(name, "auth") {
        hidden.extend(1..req.len());
    } else if is(name, "hello") {
        // HELLO protover [AUTH username password] [SETNAME name].
        let mut i = 2;
        while i < req.len() {
            if is(&req[i], "auth") {
                hidden.extend([i + 1, i + 2]);
                i += 3;
            } else {
                i += 2;
            }
        }
    } else if is(name, "migrate") {
        for i in 6..req.len() {
            if is(&req[i], "auth") {
                hidden.push(i + 1);
            } else if is(&req[i], "auth2") {
                hidden.extend([i + 1, i + 2]);
            }
        }
    }
    hidden
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(req: &[&[u8]], now_us: i64) -> String {
        String::from_utf8(line(None, 3, &Request::from_args(req), now_us)).unwrap()
    }

    #[test]
    fn arguments_are_quoted_as_redis_quotes_them() {
        assert_eq!(
            text(
                &[b"set", b"k", b"a \"b\"\\\n\r\t\x07\x08\x00\xff"],
                1_733_551_234_000_042
            ),
            "+1733551234.000042 [3 lua] \"set\" \"k\" \"a \\\"b\\\"\\\\\\n\\r\\t\\a\\b\\x00\\xff\"\r\n"
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let hidden = |req: &[&[u8]]| redacted(&Request::from_args(req));
        assert_eq!(hidden(&[b"AUTH", b"pw"]), [1]);
        assert_eq!(hidden(&[b"auth", b"user", b"pw"]), [1, 2]);
        assert_eq!(
            hidden(&[b"HELLO", b"3", b"AUTH", b"u", b"p", b"SETNAME", b"n"]),
            [3, 4]
        );
        assert_eq!(
            hidden(&[
                b"MIGRATE", b"h", b"1", b"k", b"0", b"5", b"AUTH2", b"u", b"p"
            ]),
            [7, 8]
        );
        assert_eq!(
            hidden(&[
                b"MIGRATE", b"h", b"1", b"k", b"0", b"5", b"COPY", b"AUTH", b"p"
            ]),
            [8]
        );
        assert!(hidden(&[b"SET", b"auth", b"x"]).is_empty());
    }
}

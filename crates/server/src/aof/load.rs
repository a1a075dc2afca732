//! Loading an AOF at startup: the manifest's files in order, the base (an
//! RDB file, or commands) then each incremental file's commands, run
//! through the ordinary command path by a client that gets no replies.
//!
//! Parsing is Redis's (`loadSingleAppendOnlyFile`): `#` lines are
//! annotations, a record is `*<argc>` then `$<len>` and the bytes; a file
//! that ends inside a record, or inside MULTI without its EXEC, is
//! truncated, and is kept up to its last whole command when
//! `aof-load-truncated` says so (only the last file may be); anything else
//! malformed refuses the whole load.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::client::{Client, ClientInfo};
use crate::server::Shared;

/// Why one file's parse stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The file ends inside a record (or inside MULTI): everything up to
    /// `valid` bytes is whole.
    Truncated { valid: usize },
    /// Not the AOF format at this offset.
    Format { offset: usize },
}

/// One parsed command and the offset just past it.
type Record = (Vec<Bytes>, usize);

/// Reads the next command of `data` from `pos`: `Ok(None)` at the end.
pub(crate) fn next_command(data: &Bytes, mut pos: usize) -> Result<Option<Record>, Stop> {
    loop {
        if pos >= data.len() {
            return Ok(None);
        }
        let start = pos;
        let (line, after) = read_line(data, pos).ok_or(Stop::Truncated { valid: start })?;
        if line.first() == Some(&b'#') {
            pos = after;
            continue;
        }
        if line.first() != Some(&b'*') {
            return Err(Stop::Format { offset: start });
        }
        let argc = atoi(&line[1..]);
        if argc < 1 {
            return Err(Stop::Format { offset: start });
        }
        pos = after;
        let mut args = Vec::with_capacity((argc as usize).min(1024));
        for _ in 0..argc {
            let (line, after) = read_line(data, pos).ok_or(Stop::Truncated { valid: start })?;
            if line.first() != Some(&b'$') {
                return Err(Stop::Format { offset: pos });
            }
            let len = atoi(&line[1..]);
            if len < 0 {
                return Err(Stop::Format { offset: pos });
            }
            let len = len as usize;
            let end = after
                .checked_add(len)
                .and_then(|e| e.checked_add(2))
                .filter(|&e| e <= data.len())
                .ok_or(Stop::Truncated { valid: start })?;
            args.push(data.slice(after..after + len));
            // Redis discards the two bytes after an argument unread.
            pos = end;
        }
        return Ok(Some((args, pos)));
    }
}

/// A line as `fgets` with Redis's 1024-byte buffer reads it: up to and
/// including `\n`, or 1023 bytes. `None` if the data ends first (a line
/// without its `\n` at the end of the file is a short read).
fn read_line(data: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = &data[pos..];
    let window = &rest[..rest.len().min(1023)];
    match window.iter().position(|&b| b == b'\n') {
        Some(i) => Some((&rest[..i], pos + i + 1)),
        None if rest.len() > 1023 => Some((window, pos + 1023)),
        None => None,
    }
}

/// C's `atoi`/`strtol`/`atoll`: optional sign, then leading digits.
pub(super) fn atoi(v: &[u8]) -> i64 {
    let v = v.trim_ascii_start();
    let (neg, digits) = match v.first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    let mut n: i64 = 0;
    for &d in digits.iter().take_while(|d| d.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(i64::from(d - b'0'));
    }
    if neg { -n } else { n }
}

/// How loading one file went.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every command ran.
    Ok,
    /// Empty or absent (Redis's `AOF_EMPTY`, `AOF_NOT_EXIST`).
    Empty,
    /// Truncated at this offset, and loaded up to it.
    Truncated(usize),
}

/// The client that runs a file's commands: a master's client, so writes
/// are never refused and keys are never expired on access (Redis loads
/// an AOF with expiry off too). Listed in no CLIENT LIST.
pub(crate) struct Loader<'a> {
    shared: &'a Shared,
    client: Client,
}

impl<'a> Loader<'a> {
    pub(crate) fn new(shared: &'a Shared) -> Loader<'a> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let info: Arc<ClientInfo> = ClientInfo::register(shared, addr, addr);
        if let Ok(mut clients) = shared.clients.lock() {
            clients.remove(&info.id);
        }
        let mut client = Client::new(info, true);
        client.is_master = true;
        Loader { shared, client }
    }

    /// Runs the commands of `data` (the file `name`); `truncated_ok` is
    /// `aof-load-truncated` for the last file. On a truncated file that
    /// may not be kept, or a malformed one, the error is Redis's log line.
    pub(crate) fn run_file(
        &mut self,
        name: &str,
        path: &Path,
        data: &Bytes,
        truncated_ok: bool,
    ) -> Result<Outcome, String> {
        if data.is_empty() {
            return Ok(Outcome::Empty);
        }
        let mut pos = 0;
        // The offset before the MULTI being replayed, if one is open.
        let mut before_multi = None;
        let stop = loop {
            match next_command(data, pos) {
                Ok(None) => {
                    match before_multi {
                        Some(valid) => {
                            tracing::warn!(
                                "Revert incomplete MULTI/EXEC transaction in AOF file {name}"
                            );
                            // The queued commands are dropped with the client's
                            // transaction.
                            self.client.multi = None;
                            break Stop::Truncated { valid };
                        }
                        None => return Ok(Outcome::Ok),
                    }
                }
                Ok(Some((args, end))) => {
                    if crate::cmd::lookup_index(&args[0]).is_none() {
                        return Err(format!(
                            "Unknown command '{}' reading the append only file {name}",
                            String::from_utf8_lossy(&args[0])
                        ));
                    }
                    if args[0].eq_ignore_ascii_case(b"multi") {
                        before_multi = Some(pos);
                    } else if args[0].eq_ignore_ascii_case(b"exec") {
                        before_multi = None;
                    }
                    self.run(args);
                    pos = end;
                }
                Err(stop) => break stop,
            }
        };
        match stop {
            Stop::Truncated { valid } => {
                if !truncated_ok {
                    return Err(format!(
                        "Unexpected end of file reading the append only file {name}. You can: \
                         1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. \
                         2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server."
                    ));
                }
                tracing::warn!("!!! Warning: short read while loading the AOF file {name}!!!");
                tracing::warn!("!!! Truncating the AOF {name} at offset {valid} !!!");
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .and_then(|f| f.set_len(valid as u64).and_then(|()| f.sync_all()));
                if let Err(e) = file {
                    return Err(format!("Error truncating the AOF file {name}: {e}"));
                }
                tracing::warn!("AOF {name} loaded anyway because aof-load-truncated is enabled");
                Ok(Outcome::Truncated(valid))
            }
            Stop::Format { offset } => Err(format!(
                "Bad file format reading the append only file {name} (at offset {offset}): \
                 make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>"
            )),
        }
    }

    /// Runs one command, its reply dropped.
    fn run(&mut self, args: Vec<Bytes>) {
        let req = resp::Request::from_args(&args);
        let mut sink = transport::Output::new();
        self.client.clock = crate::server::Clock::new();
        let after = crate::cmd::execute(self.shared, &mut self.client, &mut sink, &req);
        // A blocking command finds its list empty only in a file no server
        // wrote; it is forgotten, not left waiting.
        if let crate::cmd::After::Block(blocked) = after {
            blocked.waiter.claim();
            crate::blocking::unregister(&self.shared.keyspace, &blocked.waiter);
        }
    }

    /// Ends the load: the counters the commands gathered reach INFO.
    pub(crate) fn finish(mut self) {
        self.client.stats.flush(&self.shared.stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(data: &[u8]) -> Result<Vec<Vec<Bytes>>, Stop> {
        let data = Bytes::copy_from_slice(data);
        let mut pos = 0;
        let mut out = Vec::new();
        while let Some((args, end)) = next_command(&data, pos)? {
            out.push(args);
            pos = end;
        }
        Ok(out)
    }

    #[test]
    fn commands_and_annotations() {
        let data = b"#TS:1700000000\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nset\r\n$1\r\nk\r\n$0\r\n\r\n";
        let cmds = all(data).unwrap();
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[1][2], Bytes::new());
    }

    #[test]
    fn every_prefix_is_truncated_at_the_last_whole_command() {
        let first = b"*2\r\n$3\r\nget\r\n$1\r\nk\r\n";
        let second = b"*3\r\n$3\r\nset\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        let whole = [&first[..], &second[..]].concat();
        for cut in 0..whole.len() {
            let data = Bytes::copy_from_slice(&whole[..cut]);
            let mut pos = 0;
            let stop = loop {
                match next_command(&data, pos) {
                    Ok(Some((_, end))) => pos = end,
                    Ok(None) => break None,
                    Err(s) => break Some(s),
                }
            };
            if cut == 0 || cut == first.len() {
                assert_eq!(stop, None, "cut {cut}");
            } else {
                let valid = if cut < first.len() { 0 } else { first.len() };
                assert_eq!(stop, Some(Stop::Truncated { valid }), "cut {cut}");
            }
        }
    }

    #[test]
    fn malformed_records_are_format_errors() {
        assert_eq!(all(b"set k v\r\n"), Err(Stop::Format { offset: 0 }));
        assert_eq!(all(b"*0\r\n"), Err(Stop::Format { offset: 0 }));
        assert_eq!(
            all(b"*1\r\n$3\r\nget\r\n*1\r\n+ok\r\n"),
            Err(Stop::Format { offset: 17 })
        );
        assert_eq!(all(b"*1\r\n$-1\r\n"), Err(Stop::Format { offset: 4 }));
        // A huge announced length is a short read, never an allocation.
        assert_eq!(
            all(b"*1\r\n$99999999999\r\nab"),
            Err(Stop::Truncated { valid: 0 })
        );
        assert!(all(b"*99999999999\r\n").is_err());
    }
}

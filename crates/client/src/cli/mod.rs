//! `ember-cli`: `redis-cli` for an Ember topology, as a library.
//!
//! The program is [`main`]; [`run`] is the same with its arguments and
//! standard streams passed in, so tests and other programs can run it in
//! process. `ember-cli --help` lists the flags.
//!
//! - `ember-cli [TOPOLOGY] CMD ARG...` runs one command and prints its reply
//!   as `redis-cli` does: formatted (`"bar"`, `(integer) 3`, `1) "a"`) on a
//!   terminal or with `--no-raw`, raw (`bar`, `3`, one array element a line)
//!   otherwise or with `--raw`.
//! - With no command, it reads commands from standard input, one a line,
//!   quoted as in `redis-cli`. From a pipe they are pipelined, many in
//!   flight, and the replies come out in input order: the bulk-load path.
//! - `ember-cli [TOPOLOGY] locate KEY...` prints where each key lives,
//!   without connecting.
//! - `ember-cli [TOPOLOGY] bench [OPTIONS]` measures `SET` and `GET` through
//!   the client.
//! - `ember-cli [TOPOLOGY] check [--verbose] [--fix --from-group G]` compares
//!   the replica groups key by key; exit status 1 when they differ.
//!
//! The topology is `--replica HOST:PORT,...` once per replica group, or
//! `--topology FILE` (TOML, see below); without either, one node at
//! `127.0.0.1:6379`.
//!
//! ```toml
//! # One list per replica group, each in shard order.
//! replicas = [
//!     ["10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"],
//!     ["10.0.1.1:6379", "10.0.1.2:6379", "10.0.1.3:6379"],
//! ]
//! # Optional; flags given on the command line win.
//! write_policy = "quorum"        # one, quorum, all
//! read_preference = "fixed"      # fixed, round-robin, fastest
//! timeout = "500ms"
//! hash_tags = false
//! ```

mod bench;
mod check;
mod file;
mod format;
mod subscribe;

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use resp::Frame;
use route::{NodeId, ReadPreference, Topology, Trust, WritePolicy};
use tokio::sync::oneshot::error::TryRecvError;

use crate::{Client, Error, Options, RepairKind};

/// The standard streams of one run, and whether each is a terminal.
pub struct Io<'a> {
    /// Commands, one a line, when none is given as arguments.
    pub stdin: Box<dyn BufRead + Send>,
    /// Whether standard input is a terminal (then commands are read one at
    /// a time, interactively).
    pub stdin_is_terminal: bool,
    /// Replies.
    pub stdout: &'a mut dyn Write,
    /// Whether standard output is a terminal (then replies are formatted
    /// unless `--raw` says otherwise).
    pub stdout_is_terminal: bool,
    /// Errors, and `bench`'s progress.
    pub stderr: &'a mut dyn Write,
    /// Whether standard error is a terminal (then `bench` shows progress).
    pub stderr_is_terminal: bool,
}

impl fmt::Debug for Io<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Io")
            .field("stdin_is_terminal", &self.stdin_is_terminal)
            .field("stdout_is_terminal", &self.stdout_is_terminal)
            .field("stderr_is_terminal", &self.stderr_is_terminal)
            .finish_non_exhaustive()
    }
}

/// Runs `ember-cli` with the process's arguments and streams.
pub fn main() -> ExitCode {
    let stdin = std::io::stdin();
    let stdin_is_terminal = stdin.is_terminal();
    let stdout = std::io::stdout();
    let stdout_is_terminal = stdout.is_terminal();
    let stderr = std::io::stderr();
    let stderr_is_terminal = stderr.is_terminal();
    let io = Io {
        stdin: Box::new(std::io::BufReader::new(stdin)),
        stdin_is_terminal,
        stdout: &mut stdout.lock(),
        stdout_is_terminal,
        stderr: &mut stderr.lock(),
        stderr_is_terminal,
    };
    ExitCode::from(run(std::env::args_os().collect(), io))
}

/// Runs `ember-cli` with `args` (the program name first) on `io`, and
/// returns its exit status: 0, or 1 when a request got no answer (a Redis
/// error reply is an answer, as in `redis-cli`), or 2 for bad usage.
pub fn run(args: Vec<OsString>, io: Io<'_>) -> u8 {
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => return usage_error(e, io.stdout, io.stderr),
    };
    let (topology, options) = match args.fleet.settings() {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(io.stderr, "ember-cli: {e}");
            return 2;
        }
    };
    let raw = if args.raw {
        true
    } else if args.no_raw {
        false
    } else {
        !io.stdout_is_terminal
    };
    let mut command: Vec<Bytes> = args
        .command
        .into_iter()
        .map(|a| Bytes::from(a.into_encoded_bytes()))
        .collect();
    let first = command.first().map(|c| c.to_ascii_lowercase());
    // A one-shot command ends before a repair would: leave repairs to
    // `repair`, to long-lived clients and to the line modes.
    let mut options = options;
    options.repair = match args.repair {
        Some(mode) => mode == RepairMode::Auto,
        None => first.is_none(),
    };
    match first.as_deref() {
        Some(b"repair") => {
            command.remove(0);
            options.repair = false;
            with_client(topology, options, io, |client, io| async move {
                repair(&client, &command, io).await
            })
        }
        Some(b"locate") => {
            command.remove(0);
            locate(&topology, &command, io.stdout)
        }
        Some(b"bench") => {
            let mut argv = vec![OsString::from("ember-cli bench")];
            argv.extend(
                command[1..]
                    .iter()
                    .map(|a| OsString::from(String::from_utf8_lossy(a).into_owned())),
            );
            let bench = match bench::BenchArgs::try_parse_from(argv) {
                Ok(b) => b,
                Err(e) => return usage_error(e, io.stdout, io.stderr),
            };
            with_client(topology, options, io, |client, io| async move {
                bench::run(client, bench, io).await
            })
        }
        Some(b"check") => check::main(topology, options, &command[1..], io),
        Some(name) if subscribe::kind(name).is_some() => {
            let kind = subscribe::kind(name).unwrap_or(crate::Kind::Channel);
            command.remove(0);
            with_client(topology, options, io, |client, io| async move {
                subscribe::run(client, kind, command, raw, io).await
            })
        }
        Some(_) => with_client(topology, options, io, |client, io| async move {
            let result = execute(&client, command).await;
            let mut out = Vec::new();
            let failed = print(&result, raw, &mut out);
            let _ = io.stdout.write_all(&out).and_then(|()| io.stdout.flush());
            u8::from(failed)
        }),
        None => with_client(topology, options, io, |client, io| async move {
            if io.stdin_is_terminal {
                interactive(client, raw, io).await
            } else {
                bulk(client, raw, io).await
            }
        }),
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "ember-cli",
    version,
    about = "Runs Redis commands on an Ember topology: R replica groups of S shards.",
    after_help = "Without a command, reads one command a line from standard input (pipelined \
                  when it is not a terminal).\n\
                  `ember-cli locate KEY...` prints each key's shard and nodes.\n\
                  `ember-cli repair [HOST:PORT...]` brings nodes back to their peers' data \
                  (every doubted node without an address).\n\
                  `ember-cli bench --help` describes the benchmark."
)]
struct Args {
    #[command(flatten)]
    fleet: FleetArgs,
    /// Print replies raw, even on a terminal.
    #[arg(long, conflicts_with = "no_raw")]
    raw: bool,
    /// Print replies formatted, even when standard output is not a terminal.
    #[arg(long)]
    no_raw: bool,
    /// Repair doubted nodes as soon as they answer [default: auto when
    /// reading commands from standard input, off for one command].
    #[arg(long, value_enum)]
    repair: Option<RepairMode>,
    /// A Redis command and its arguments, `locate KEY...` or `bench`.
    #[arg(value_name = "COMMAND", trailing_var_arg = true)]
    command: Vec<OsString>,
}

/// The fleet and how to use it: the flags `ember-cli` and `ember-proxy`
/// share. [`FleetArgs::settings`] turns them into a topology and options.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// One replica group: its shards' addresses in shard order, separated
    /// by commas. Give it once per group. Default: 127.0.0.1:6379.
    #[arg(long = "replica", value_name = "HOST:PORT,...")]
    pub replicas: Vec<String>,
    /// A TOML file with `replicas = [["HOST:PORT", ...], ...]` and,
    /// optionally, the settings below (write_policy, read_preference,
    /// timeout, hash_tags).
    #[arg(long, value_name = "FILE", conflicts_with = "replicas")]
    pub topology: Option<PathBuf>,
    /// How many replica groups must acknowledge a write [default: one].
    #[arg(long, value_enum)]
    write_policy: Option<Policy>,
    /// Which replica a read tries first [default: fixed].
    #[arg(long, value_enum)]
    read_preference: Option<Preference>,
    /// How long a node has to answer: `500ms`, `2s`, or seconds [default: 1s].
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Place keys holding `{tag}` by the tag alone, as Redis Cluster does.
    #[arg(long)]
    hash_tags: bool,
    /// The password every node asks for (`AUTH`), as `redis-cli -a`.
    #[arg(short = 'a', long = "pass", value_name = "PASSWORD")]
    password: Option<String>,
    /// The ACL user for `--pass`.
    #[arg(long)]
    user: Option<String>,
    /// The database to select on every node, as `redis-cli -n`.
    #[arg(short = 'n', long = "db", value_name = "DB")]
    database: Option<u32>,
    /// Take every node's answers as they are: no markers, no hints, no
    /// repair (self-healing is on by default).
    #[arg(long)]
    no_heal: bool,
    /// The database of the fleet's own keys (markers, hints) [default: 15].
    #[arg(long, value_name = "DB")]
    meta_db: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RepairMode {
    Auto,
    Off,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Policy {
    One,
    Quorum,
    All,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Preference {
    Fixed,
    RoundRobin,
    Fastest,
}

impl FleetArgs {
    /// The topology and options from the file, then the flags.
    pub fn settings(&self) -> Result<(Topology, Options), String> {
        let text = match &self.topology {
            Some(path) => Some((
                path.display().to_string(),
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            )),
            None => None,
        };
        self.settings_with(
            text.as_ref()
                .map(|(name, text)| (name.as_str(), text.as_str())),
        )
    }

    /// [`FleetArgs::settings`], the topology file given as its name (for
    /// errors) and text, as another program's file holds it (ember-proxy's
    /// `--config`). Replica groups named by `--replica` flags replace the
    /// file's; the other flags override the file's settings.
    pub fn settings_with(&self, file: Option<(&str, &str)>) -> Result<(Topology, Options), String> {
        let parsed = match file {
            Some((name, text)) => Some(
                file::TopologyFile::parse(text).map_err(|e| format!("{name}: {}", e.trim_end()))?,
            ),
            None => None,
        };
        let from_file = parsed.is_some();
        let file = parsed.unwrap_or_default();
        let groups: Vec<Vec<String>> = if from_file && self.replicas.is_empty() {
            file.replicas
        } else if self.replicas.is_empty() {
            vec![vec!["127.0.0.1:6379".to_owned()]]
        } else {
            self.replicas
                .iter()
                .map(|g| g.split(',').map(|a| a.trim().to_owned()).collect())
                .collect()
        };
        if let Some(bad) = groups.iter().flatten().find(|a| !a.contains(':')) {
            return Err(format!("bad node address '{bad}': expected HOST:PORT"));
        }
        let hash_tags = self.hash_tags || file.hash_tags.unwrap_or(false);
        let topology = Topology::new(groups)
            .map_err(|e| e.to_string())?
            .with_hash_tags(hash_tags);
        let mut options = Options::default();
        let value = |v: &Option<String>| v.as_deref().map(str::to_owned);
        if let Some(p) = value(&file.write_policy) {
            options.write_policy = match Policy::from_str(&p, true)? {
                Policy::One => WritePolicy::One,
                Policy::Quorum => WritePolicy::Quorum,
                Policy::All => WritePolicy::All,
            };
        }
        if let Some(p) = value(&file.read_preference) {
            options.read_preference = preference(Preference::from_str(&p, true)?);
        }
        if let Some(t) = value(&file.timeout) {
            options.timeout = parse_duration(&t)?;
        }
        if let Some(p) = self.write_policy {
            options.write_policy = match p {
                Policy::One => WritePolicy::One,
                Policy::Quorum => WritePolicy::Quorum,
                Policy::All => WritePolicy::All,
            };
        }
        if let Some(p) = self.read_preference {
            options.read_preference = preference(p);
        }
        if let Some(t) = self.timeout {
            options.timeout = t;
        }
        if let Some(p) = &self.password {
            options.password = Some(p.clone());
        }
        if let Some(u) = &self.user {
            options.username = Some(u.clone());
        }
        if let Some(db) = self.database {
            options.database = db;
        }
        options.healing = !self.no_heal;
        if let Some(db) = self.meta_db {
            options.meta_database = db;
        }
        Ok((topology, options))
    }
}

fn preference(p: Preference) -> ReadPreference {
    match p {
        Preference::Fixed => ReadPreference::Fixed,
        Preference::RoundRobin => ReadPreference::RoundRobin,
        Preference::Fastest => ReadPreference::FastestRecently,
    }
}

/// `250ms`, `2s`, `1.5` (seconds), `1m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("bad duration '{text}': expected a number with ms, s or m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => {
            return Err(format!(
                "bad duration '{text}': the unit must be ms, s or m"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("bad duration '{text}'"))
}

fn usage_error(e: clap::Error, stdout: &mut dyn Write, stderr: &mut dyn Write) -> u8 {
    let text = e.render().to_string();
    let _ = if e.use_stderr() {
        stderr.write_all(text.as_bytes())
    } else {
        stdout.write_all(text.as_bytes())
    };
    if e.use_stderr() { 2 } else { 0 }
}

fn locate(topology: &Topology, keys: &[Bytes], out: &mut dyn Write) -> u8 {
    let mut text = Vec::new();
    for key in keys {
        let (shard, nodes) = topology.locate(key);
        text.extend_from_slice(key);
        text.extend_from_slice(format!("\t{}", shard.0).as_bytes());
        for node in nodes {
            text.push(b'\t');
            text.extend_from_slice(topology.addr(node).unwrap_or("?").as_bytes());
        }
        text.push(b'\n');
    }
    match out.write_all(&text).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// Connects, then runs `body` on a runtime of its own.
/// `repair [HOST:PORT...]`: repairs the nodes named (every node the
/// client doubts, without a name) and says what came of each.
async fn repair(client: &Client, addrs: &[Bytes], io: Io<'_>) -> u8 {
    let topology = client.topology();
    let mut nodes = Vec::new();
    for addr in addrs {
        let addr = String::from_utf8_lossy(addr);
        match topology.nodes().find(|(_, a)| *a == addr) {
            Some((node, _)) => nodes.push(node),
            None => {
                let _ = writeln!(io.stderr, "ember-cli: {addr} is not a node of the topology");
                return 2;
            }
        }
    }
    if addrs.is_empty() {
        nodes = topology
            .nodes()
            .map(|(n, _)| n)
            .filter(|&n| client.trust(n) != Some(Trust::Verified))
            .collect();
        if nodes.is_empty() {
            let _ = writeln!(io.stdout, "every node is verified");
            return 0;
        }
    }
    let mut failed = false;
    for node in nodes {
        let addr = topology.addr(node).unwrap_or_default();
        let line = match client.repair(node).await {
            Ok(r) => {
                let from = topology.addr(r.source).unwrap_or_default();
                let secs = r.elapsed.as_secs_f64();
                match r.kind {
                    RepairKind::Full => format!(
                        "{addr}: full copy from {from}, then {} hinted keys copied and {} deleted, in {secs:.2} s",
                        r.copied, r.deleted
                    ),
                    RepairKind::Hints => format!(
                        "{addr}: {} hinted keys copied and {} deleted from {from}, in {secs:.2} s",
                        r.copied, r.deleted
                    ),
                    _ => format!("{addr}: nothing to repair (verified against {from})"),
                }
            }
            Err(e) => {
                failed = true;
                format!("{addr}: {e}")
            }
        };
        let _ = writeln!(io.stdout, "{line}");
    }
    u8::from(failed)
}

fn with_client<'a, F, Fut>(topology: Topology, options: Options, io: Io<'a>, body: F) -> u8
where
    F: FnOnce(Client, Io<'a>) -> Fut,
    Fut: Future<Output = u8>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(io.stderr, "ember-cli: cannot start a runtime: {e}");
            return 1;
        }
    };
    let code = runtime.block_on(async {
        match Client::connect(topology, options).await {
            Ok(client) => {
                let code = body(client.clone(), io).await;
                // Hints of writes a node missed must be on its peers
                // before this process ends.
                client.flush().await;
                code
            }
            Err(e) => {
                // `e` names the node that failed last.
                let _ = writeln!(io.stderr, "Could not connect to {e}");
                1
            }
        }
    });
    // Blocked reads of standard input must not hold the exit up.
    runtime.shutdown_background();
    code
}

/// Runs one command. With a single node, every command goes to it as it
/// is, as `redis-cli` would send it (even those the router does not route:
/// unknown ones, `CLIENT`, `SELECT`...); otherwise the router places it.
async fn execute(client: &Client, args: Vec<Bytes>) -> Result<Frame, Error> {
    send(client, args).await.unwrap_or(Err(Error::Closed))
}

/// Sends a command at once; the receiver gets its answer. Commands sent one
/// after the other reach each node in that order.
fn send(client: &Client, args: Vec<Bytes>) -> Answer {
    let node = (client.topology().len() == 1).then_some(NodeId(0));
    client.send(node, args)
}

type Answer = tokio::sync::oneshot::Receiver<Result<Frame, Error>>;

/// Appends a result as `redis-cli` prints it; returns whether the request
/// got no answer.
fn print(result: &Result<Frame, Error>, raw: bool, out: &mut Vec<u8>) -> bool {
    let (frame, failed) = match result {
        Ok(frame) => (frame.clone(), false),
        Err(Error::Redis(text)) => (Frame::error(text.clone()), false),
        Err(e) => (Frame::error(e.to_string()), true),
    };
    if raw {
        format::raw(&frame, out);
        out.push(b'\n');
    } else {
        format::tty(&frame, out);
    }
    failed
}

/// One line of input.
enum Line {
    Command(Vec<Bytes>),
    Unbalanced,
}

/// Splits a line as `redis-cli` does; `None` for a blank line.
fn parse_line(line: &[u8]) -> Option<Line> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match resp::split_args(line) {
        Some(args) if args.is_empty() => None,
        Some(args) => Some(Line::Command(args)),
        None => Some(Line::Unbalanced),
    }
}

/// Requests in flight at once in bulk mode.
const WINDOW: usize = 8192;

/// Pipes standard input through: every line's command is sent as soon as it
/// is read, in input order, and the replies are printed in input order.
async fn bulk(client: Client, raw: bool, io: Io<'_>) -> u8 {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Line>(1024);
    let mut stdin = io.stdin;
    // Reading standard input blocks; give it a thread.
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match stdin.read_until(b'\n', &mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {
                    if let Some(line) = parse_line(&buf)
                        && tx.blocking_send(line).is_err()
                    {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    });
    let mut window: VecDeque<Option<Answer>> = VecDeque::new();
    let mut out = Vec::new();
    let mut failures = 0usize;
    let mut broken = false;
    let stdout = io.stdout;
    let mut emit = |answer: Option<Result<Frame, Error>>, out: &mut Vec<u8>| match answer {
        Some(result) => failures += usize::from(print(&result, raw, out)),
        None => {
            let err = Frame::error("ERR Protocol error: unbalanced quotes in request");
            let _ = print(&Ok(err), raw, out);
        }
    };
    while let Some(line) = rx.recv().await {
        window.push_back(match line {
            Line::Command(args) => Some(send(&client, args)),
            Line::Unbalanced => None,
        });
        // Print what is answered at the front; wait only when the window
        // is full.
        loop {
            let full = window.len() >= WINDOW;
            let Some(front) = window.front_mut() else {
                break;
            };
            let answer = match front {
                None => None,
                Some(answer) => match answer.try_recv() {
                    Ok(result) => Some(result),
                    Err(TryRecvError::Closed) => Some(Err(Error::Closed)),
                    Err(TryRecvError::Empty) if !full => break,
                    Err(TryRecvError::Empty) => Some(answer.await.unwrap_or(Err(Error::Closed))),
                },
            };
            window.pop_front();
            emit(answer, &mut out);
        }
        if out.len() >= 64 * 1024 {
            broken |= stdout.write_all(&out).is_err();
            out.clear();
        }
    }
    for slot in window {
        match slot {
            Some(answer) => emit(Some(answer.await.unwrap_or(Err(Error::Closed))), &mut out),
            None => emit(None, &mut out),
        }
    }
    broken |= stdout
        .write_all(&out)
        .and_then(|()| stdout.flush())
        .is_err();
    if let Ok(Err(e)) = reader.join() {
        let _ = writeln!(io.stderr, "ember-cli: reading standard input: {e}");
        return 1;
    }
    u8::from(failures > 0 || broken)
}

/// One command at a time from a terminal.
async fn interactive(client: Client, raw: bool, io: Io<'_>) -> u8 {
    let mut stdin = io.stdin;
    let mut line = Vec::new();
    loop {
        let _ = io.stdout.write_all(b"ember> ");
        let _ = io.stdout.flush();
        line.clear();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return 0,
            Ok(_) => {}
        }
        let args = match parse_line(&line) {
            None => continue,
            Some(Line::Unbalanced) => {
                let _ = writeln!(io.stdout, "Invalid argument(s)");
                continue;
            }
            Some(Line::Command(args)) => args,
        };
        if args.len() == 1
            && (args[0].eq_ignore_ascii_case(b"quit") || args[0].eq_ignore_ascii_case(b"exit"))
        {
            return 0;
        }
        let result = execute(&client, args).await;
        let mut out = Vec::new();
        print(&result, raw, &mut out);
        let _ = io.stdout.write_all(&out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Result<(Topology, Options), String> {
        let mut argv = vec!["ember-cli"];
        argv.extend(args);
        Args::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .fleet
            .settings()
    }

    #[test]
    fn topologies_and_settings() {
        let (t, o) = settings(&[]).unwrap();
        assert_eq!((t.groups(), t.shards()), (1, 1));
        assert_eq!(t.addr(NodeId(0)), Some("127.0.0.1:6379"));
        assert_eq!(o, Options::default());
        let (t, o) = settings(&[
            "--replica",
            "a:1,b:1",
            "--replica",
            "c:1, d:1",
            "--write-policy",
            "quorum",
            "--read-preference",
            "round-robin",
            "--timeout",
            "250ms",
            "--hash-tags",
            "GET",
            "--k",
        ])
        .unwrap();
        assert_eq!((t.groups(), t.shards(), t.hash_tags()), (2, 2, true));
        assert_eq!(t.addr(NodeId(3)), Some("d:1"));
        assert_eq!(o.write_policy, WritePolicy::Quorum);
        assert_eq!(o.read_preference, ReadPreference::RoundRobin);
        assert_eq!(o.timeout, Duration::from_millis(250));
        assert!(settings(&["--replica", "a:1,b:1", "--replica", "c:1"]).is_err());
        assert!(settings(&["--replica", "nohost"]).is_err());
        assert!(settings(&["--write-policy", "most"]).is_err());
        assert!(settings(&["--raw", "--no-raw"]).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("1h").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn lines() {
        assert!(parse_line(b"   \r\n").is_none());
        assert!(matches!(parse_line(b"GET \"k\r\n"), Some(Line::Unbalanced)));
        let Some(Line::Command(args)) = parse_line(b"SET k \"a b\"\r\n") else {
            panic!("a command");
        };
        assert_eq!(args, ["SET", "k", "a b"]);
    }

    #[test]
    fn locate_needs_no_server() {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let io = Io {
            stdin: Box::new(std::io::empty()),
            stdin_is_terminal: false,
            stdout: &mut out,
            stdout_is_terminal: false,
            stderr: &mut err,
            stderr_is_terminal: false,
        };
        let args = [
            "ember-cli",
            "--replica",
            "a:1,b:1",
            "--replica",
            "c:1,d:1",
            "locate",
            "foo",
        ];
        assert_eq!(run(args.iter().map(OsString::from).collect(), io), 0);
        let topology = Topology::new([["a:1", "b:1"], ["c:1", "d:1"]]).unwrap();
        let shard = topology.shard_for(b"foo").0;
        let want = if shard == 0 {
            "foo\t0\ta:1\tc:1\n"
        } else {
            "foo\t1\tb:1\td:1\n"
        };
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }
}

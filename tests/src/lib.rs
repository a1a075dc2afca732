//! Helpers shared by Ember's end-to-end tests: real server processes on
//! loopback ports, started fresh per test and killed when dropped.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to start accepting connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How many free ports a first start tries when another process takes the
/// port between [`free_port`] and the server's bind.
const START_ATTEMPTS: usize = 3;

/// How long a test waits for a reply before calling it lost.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A real `redis-server` on a free loopback port, with persistence off and
/// its files in a private temporary directory. Killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts `redis-server` with `extra` arguments (such as
    /// `["--requirepass", "secret"]`), and waits until it proves to be the
    /// process started here and Redis 7.0 (see [`wait_serving`]): a test
    /// that compares Ember with it must never be comparing Ember with
    /// whatever else took the port.
    ///
    /// Panics with a hint if the binary is missing: `scripts/test` installs
    /// it.
    pub fn start(extra: &[&str]) -> RedisServer {
        let password = extra
            .iter()
            .position(|a| *a == "--requirepass")
            .and_then(|i| extra.get(i + 1))
            .copied();
        let mut attempt = 1;
        loop {
            let port = free_port();
            let dir = unique_dir(&format!("ember-redis-{port}"));
            std::fs::create_dir_all(&dir).expect("create a temporary directory");
            let log = dir.join("redis.log");
            let (stdout, stderr) = output_to(&log);
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(&dir)
                .args(extra)
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start redis-server ({e}); scripts/test installs it (Debian package redis-server)")
                });
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let mut server = RedisServer { child, addr, dir };
            let expect = Identity {
                kind: NodeKind::Redis,
                version: Some("7.0."),
            };
            match wait_serving(&mut server.child, addr, password, expect, &log) {
                Ok(()) => return server,
                Err(e) if e.port_lost && attempt < START_ATTEMPTS => {
                    eprintln!("redis-server on {addr}: {}; trying another port", e.why);
                    attempt += 1;
                }
                Err(e) => panic!("redis-server on {addr}: {}", e.why),
            }
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A new connection with read and write timeouts set.
    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Writes `bytes`, then reads until the server closes the connection or
/// `want` bytes have arrived, whichever is first; returns what arrived.
pub fn exchange(stream: &mut TcpStream, bytes: &[u8], want: usize) -> Vec<u8> {
    stream.write_all(bytes).expect("write request");
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while out.len() < want {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "reading a reply: {e} (got {:?} so far)",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    out
}

/// Whether the server has closed `stream` (reads end of file within a
/// short wait).
pub fn is_closed(stream: &mut TcpStream) -> bool {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Ok(0) | Err(_))
}

/// An Ember server running in this process on a free loopback port, with
/// its own runtime on its own thread. Stopped (gracefully) on drop.
#[derive(Debug)]
pub struct EmberServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Its own `dir` (removed on drop), unless the test's lines set one:
    /// what it saves never lands in, nor loads from, the working directory
    /// every test shares.
    dir: PathBuf,
}

impl EmberServer {
    /// Starts a server configured by redis.conf-style `lines`
    /// (`["requirepass secret"]`).
    pub fn start(lines: &[&str]) -> EmberServer {
        Self::start_on(0, lines)
    }

    /// Starts a server on `port` (0 for any free one), as a restarted
    /// server comes back on its old port.
    pub fn start_on(port: u16, lines: &[&str]) -> EmberServer {
        let mut config = server::Config::default();
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ember-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the server's directory");
        let dir_line = format!("dir {}", dir.display());
        // No save points unless the test sets some (as the Redis servers
        // here are started with `--save ""`): stopping would save. The
        // test's own lines come last, so its `dir` wins.
        config
            .load_file(
                &[dir_line.as_str(), "save \"\""]
                    .iter()
                    .chain(lines)
                    .copied()
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
            .expect("valid test configuration");
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("bind");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let served = server::run(listener, config, async {
                    let _ = stopped.await;
                })
                .await;
                if let Err(e) = served {
                    eprintln!("the Ember test server did not start: {e}");
                }
            });
        });
        EmberServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
            dir,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A new connection with read and write timeouts set.
    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// A `redis://` URL for client libraries.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }
}

impl Drop for EmberServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A connection to `addr` with read and write timeouts set.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .expect("set read timeout");
    stream
        .set_write_timeout(Some(REPLY_TIMEOUT))
        .expect("set write timeout");
    stream.set_nodelay(true).expect("set nodelay");
    stream
}

/// Sends `args` as one command and returns the raw bytes of the one reply.
pub fn call(stream: &mut TcpStream, args: &[&[u8]]) -> bytes::Bytes {
    let mut request = bytes::BytesMut::new();
    resp::encode_command(&mut request, args);
    stream.write_all(&request).expect("write");
    read_reply(stream)
}

/// Reads exactly one reply frame and returns its raw bytes.
pub fn read_reply(stream: &mut TcpStream) -> bytes::Bytes {
    let mut decoder = resp::Decoder::new();
    let mut buf = bytes::BytesMut::new();
    loop {
        if let Some(frame) = decoder.decode_raw(&mut buf).expect("a valid reply") {
            assert!(buf.is_empty(), "unexpected bytes after the reply: {buf:?}");
            return frame.as_bytes().clone();
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = stream.read(&mut chunk).expect("read a reply");
        assert!(n > 0, "connection closed before a full reply ({buf:?})");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Sends `args` and reads one reply, as [`call`] does, but returns an
/// error where `call` panics: for probing a server that may not be up.
fn try_call(stream: &mut TcpStream, args: &[&[u8]]) -> std::io::Result<bytes::Bytes> {
    let mut request = bytes::BytesMut::new();
    resp::encode_command(&mut request, args);
    stream.write_all(&request)?;
    let mut decoder = resp::Decoder::new();
    let mut buf = bytes::BytesMut::new();
    loop {
        let decoded = decoder
            .decode_raw(&mut buf)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        if let Some(frame) = decoded {
            return Ok(frame.as_bytes().clone());
        }
        let mut chunk = [0u8; 16 * 1024];
        match stream.read(&mut chunk)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Which server a [`NodeProcess`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// `redis-server`, with persistence off.
    Redis,
    /// Ember's server, in a process of its own (see [`NodeProcess`]).
    Ember,
}

/// The environment variable that makes the test binary serve as an Ember
/// node on the port it names (see [`serve_if_node_process`]).
pub const NODE_PORT_ENV: &str = "EMBER_TEST_NODE_PORT";

/// The environment variable that hands a node process its configuration
/// lines (see [`NodeProcess::start_with`]).
pub const NODE_CONFIG_ENV: &str = "EMBER_TEST_NODE_CONFIG";

/// The test that [`NodeProcess`] runs in a child copy of the test binary:
/// `tests/it/client.rs` calls [`serve_if_node_process`] from it. It is
/// `#[ignore]`d, so a run of the suite does not count it as a test.
pub const NODE_PROCESS_TEST: &str = "client::ember_node_process";

/// Set (to a tracing filter, say `debug`), an Ember node run by
/// [`NodeProcess`] logs to the `node.log` in its directory.
pub const NODE_LOG_ENV: &str = "EMBER_NODE_LOG";

/// Set, a [`NodeProcess`]'s directory (its log, its files) outlives it, and
/// its path is printed: for a test that failed.
pub const KEEP_NODES_ENV: &str = "EMBER_KEEP_NODES";

/// A server in a process of its own on a fixed loopback port, so a test can
/// SIGKILL it mid-load and start it again on the same port. Killed on drop.
///
/// An Ember node is the test binary itself, run again with only
/// [`NODE_PROCESS_TEST`] selected (with `--ignored`) and [`NODE_PORT_ENV`]
/// set: that test
/// serves until its standard input closes (when this process exits, however
/// it exits). So the node runs the server code of this very build, with no
/// binary to build first. Set `EMBER_SERVER_BIN` to run a built
/// `ember-server` instead (say `target/release/ember-server`).
#[derive(Debug)]
pub struct NodeProcess {
    kind: NodeKind,
    port: u16,
    child: Option<Child>,
    dir: PathBuf,
    /// redis.conf-style lines the server starts with.
    lines: Vec<String>,
}

impl NodeProcess {
    /// Starts a node on a free port, and waits until it proves to be the
    /// process started here (see [`wait_serving`]).
    pub fn start(kind: NodeKind) -> NodeProcess {
        NodeProcess::start_with(kind, &[])
    }

    /// Starts a node configured by redis.conf-style `lines`, its `dir`
    /// its own temporary directory (see [`NodeProcess::dir`]), which
    /// [`NodeProcess::restart`] keeps: a node restarted after a SIGKILL
    /// finds its files.
    pub fn start_with(kind: NodeKind, lines: &[&str]) -> NodeProcess {
        let mut attempt = 1;
        loop {
            let port = free_port();
            let dir = unique_dir(&format!("ember-node-{port}"));
            std::fs::create_dir_all(&dir).expect("create a temporary directory");
            let mut lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            if !lines.is_empty() {
                lines.insert(0, format!("dir {}", dir.display()));
            }
            let mut node = NodeProcess {
                kind,
                port,
                child: None,
                dir,
                lines,
            };
            match node.spawn() {
                Ok(()) => return node,
                Err(e) if e.port_lost && attempt < START_ATTEMPTS => {
                    eprintln!(
                        "{kind:?} node on port {port}: {}; trying another port",
                        e.why
                    );
                    attempt += 1;
                }
                Err(e) => panic!("{kind:?} node on port {port}: {}", e.why),
            }
        }
    }

    /// The address it listens on, `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Its directory (`dir`, for a node started with configuration).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills it with SIGKILL: no goodbye on its sockets beyond what the
    /// kernel sends, and its data is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it with SIGSTOP: it keeps its sockets and its data, and
    /// answers nothing until [`NodeProcess::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused node run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let child = self.child.as_ref().expect("a running node");
        let status = Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {sig} failed");
    }

    /// Starts it again on the same port, and waits until it answers as the
    /// new process: empty, unless its configuration has it load files
    /// from its directory (which is kept).
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.spawn() {
            panic!(
                "{:?} node on port {} (restarted): {}",
                self.kind, self.port, e.why
            );
        }
    }

    /// Starts the process on this node's port and waits until it serves.
    fn spawn(&mut self) -> Result<(), NotServing> {
        let port = self.port.to_string();
        let mut command = match (self.kind, std::env::var_os("EMBER_SERVER_BIN")) {
            (NodeKind::Redis, _) => {
                let mut c = Command::new("redis-server");
                c.args(["--port", &port, "--bind", "127.0.0.1"])
                    .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                    .arg("--dir")
                    .arg(&self.dir);
                for line in &self.lines {
                    c.args(line.split_whitespace().enumerate().map(|(i, w)| {
                        if i == 0 {
                            format!("--{w}")
                        } else {
                            w.to_string()
                        }
                    }));
                }
                c
            }
            (NodeKind::Ember, Some(bin)) => {
                let mut c = Command::new(bin);
                c.args([
                    "--port",
                    &port,
                    "--bind",
                    "127.0.0.1",
                    "--loglevel",
                    "warning",
                ]);
                if self.lines.is_empty() {
                    c.args(["--save", ""]);
                } else {
                    // No save points unless the lines set some.
                    let file = self.dir.join("node.conf");
                    let text = format!("save \"\"\n{}", self.lines.join("\n"));
                    std::fs::write(&file, text).expect("write node.conf");
                    c.arg(file);
                }
                c
            }
            (NodeKind::Ember, None) => {
                let exe = std::env::current_exe().expect("the test binary's path");
                let mut c = Command::new(exe);
                // The node's test is ignored, so that a plain run of the
                // suite does not count it as a test that passed.
                c.args([
                    NODE_PROCESS_TEST,
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(NODE_PORT_ENV, &port)
                .env(NODE_CONFIG_ENV, self.lines.join("\n"))
                // Its log should show why it stopped, not a backtrace.
                .env("RUST_BACKTRACE", "0");
                c
            }
        };
        let log = self.dir.join("node.log");
        // A restarted node's log follows its first life's.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open a log file");
        let clone = file.try_clone().expect("clone a file handle");
        let (stdout, stderr) = (Stdio::from(file), Stdio::from(clone));
        let child = command
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start a {:?} node: {e}", self.kind));
        let child = self.child.insert(child);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let expect = Identity {
            kind: self.kind,
            version: None,
        };
        wait_serving(child, addr, None, expect, &log)
    }
}

/// A directory name of this process's own under the system's temporary
/// directory: two servers started at once may be handed the same free
/// port (one of them then tries another), and a name made of the port
/// alone let the loser's cleanup delete the winner's directory.
fn unique_dir(stem: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("{stem}-{}-{n}", std::process::id()))
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
        if std::env::var_os(KEEP_NODES_ENV).is_some() {
            eprintln!(
                "{:?} node {}: kept {}",
                self.kind,
                self.addr(),
                self.dir.display()
            );
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Which server a started process must show itself to be.
#[derive(Debug, Clone, Copy)]
struct Identity {
    kind: NodeKind,
    /// What `redis_version` must start with, if it matters.
    version: Option<&'static str>,
}

/// Why a started server cannot be used.
#[derive(Debug)]
struct NotServing {
    /// Another process has the port: the child could not bind it, or
    /// something else answers on it. A first start may try another port.
    port_lost: bool,
    why: String,
}

/// Waits until `child` serves on `addr` and proves it is `child`: `PING`
/// answered (after `AUTH password`), then `INFO server` showing the
/// child's pid as `process_id` and the server `expect` names. Whatever
/// took the port between [`free_port`] and the child's bind answers with
/// another pid, and a child that cannot bind exits; a test must see either
/// as a failure, never as a server that started.
fn wait_serving(
    child: &mut Child,
    addr: SocketAddr,
    password: Option<&str>,
    expect: Identity,
    log: &Path,
) -> Result<(), NotServing> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            let output = read_log(log);
            return Err(NotServing {
                port_lost: output.contains("Address already in use"),
                why: format!(
                    "the process exited ({status}) before serving; its output ends:\n{}",
                    tail(&output)
                ),
            });
        }
        if let Some(info) = server_info(addr, password) {
            return identify(&info, child.id(), expect);
        }
        if Instant::now() >= deadline {
            return Err(NotServing {
                port_lost: false,
                why: format!(
                    "not serving within {START_TIMEOUT:?}; its output ends:\n{}",
                    tail(&read_log(log))
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `INFO server` from the server at `addr`, once it is ready (`PING`
/// answered `+PONG`, not `-LOADING`); `None` until then.
fn server_info(addr: SocketAddr, password: Option<&str>) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    if let Some(password) = password {
        let ok = try_call(&mut s, &[b"AUTH", password.as_bytes()]).ok()?;
        if &ok[..] != b"+OK\r\n" {
            return None;
        }
    }
    let pong = try_call(&mut s, &[b"PING"]).ok()?;
    if &pong[..] != b"+PONG\r\n" {
        return None;
    }
    let info = try_call(&mut s, &[b"INFO", b"server"]).ok()?;
    Some(String::from_utf8_lossy(&info).into_owned())
}

/// Checks that `info` (`INFO server`) is from process `pid`, the server
/// `expect` names.
fn identify(info: &str, pid: u32, expect: Identity) -> Result<(), NotServing> {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let wrong = |port_lost, why: String| {
        let shown: Vec<String> = ["redis_version", "ember_version", "process_id", "tcp_port"]
            .iter()
            .filter_map(|name| Some(format!("{name}:{}", field(name)?)))
            .collect();
        Err(NotServing {
            port_lost,
            why: format!("{why} (INFO server says {})", shown.join(" ")),
        })
    };
    if field("process_id") != Some(&pid.to_string()) {
        return wrong(
            true,
            format!("the server answering is not the child started (pid {pid})"),
        );
    }
    // Ember names itself; Redis does not.
    let ember = field("ember_version").is_some();
    if ember != (expect.kind == NodeKind::Ember) {
        return wrong(
            false,
            format!("the child is not a {:?} server", expect.kind),
        );
    }
    if let Some(prefix) = expect.version
        && !field("redis_version").is_some_and(|v| v.starts_with(prefix))
    {
        return wrong(
            false,
            format!("the tests compare with Redis {prefix}x; install redis-server 7.0"),
        );
    }
    Ok(())
}

/// Standard output and error both going to a new file at `path`.
fn output_to(path: &Path) -> (Stdio, Stdio) {
    let file = std::fs::File::create(path).expect("create a log file");
    let clone = file.try_clone().expect("clone a file handle");
    (Stdio::from(file), Stdio::from(clone))
}

/// What a child wrote to its log at `path` so far.
fn read_log(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// The last 2,000 characters of `text`, for a message.
fn tail(text: &str) -> &str {
    let start = text.char_indices().rev().nth(2000).map_or(0, |(i, _)| i);
    &text[start..]
}

/// In a child started by [`NodeProcess`], serves as an Ember node until
/// standard input closes, then returns; anywhere else, returns at once.
pub fn serve_if_node_process() {
    let Some(port) = std::env::var_os(NODE_PORT_ENV) else {
        return;
    };
    let port: u16 = port
        .to_str()
        .and_then(|p| p.parse().ok())
        .expect("a port number");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .expect("bind the node's port");
        let parent_gone = tokio::task::spawn_blocking(|| {
            let mut buf = [0u8; 64];
            while matches!(std::io::stdin().read(&mut buf), Ok(n) if n > 0) {}
        });
        log_if_asked();
        let mut config = server::Config::default();
        // No save points unless the node's lines set some.
        let lines = std::env::var_os(NODE_CONFIG_ENV).unwrap_or_default();
        config
            .load_file(&format!("save \"\"\n{}", lines.to_string_lossy()))
            .expect("valid node configuration");
        let served = server::run(listener, config, async {
            let _ = parent_gone.await;
        })
        .await;
        if let Err(e) = served {
            eprintln!("the Ember node did not start: {e}");
        }
    });
    runtime.shutdown_background();
}

/// With [`NODE_LOG_ENV`] set (to a tracing filter, say `debug`), logs this
/// process's tracing events to its standard error: a node's go to its
/// `node.log`, a test's to its output, for a test that failed.
pub fn log_if_asked() {
    if let Ok(filter) = std::env::var(NODE_LOG_ENV) {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// `groups` replica groups of `shards` nodes each, every node its own
/// process.
#[derive(Debug)]
pub struct NodeCluster {
    /// The nodes, group by group: node `g * shards + s` is shard `s` of
    /// group `g`, as in a `Topology`.
    pub nodes: Vec<NodeProcess>,
    shards: usize,
}

impl NodeCluster {
    /// Starts every node (in parallel) and waits until each answers.
    pub fn start(kind: NodeKind, groups: usize, shards: usize) -> NodeCluster {
        let starting: Vec<_> = (0..groups * shards)
            .map(|_| std::thread::spawn(move || NodeProcess::start(kind)))
            .collect();
        let nodes = starting
            .into_iter()
            .map(|t| t.join().expect("a node started"))
            .collect();
        NodeCluster { nodes, shards }
    }

    /// The addresses, one list per group in shard order.
    pub fn groups(&self) -> Vec<Vec<String>> {
        self.nodes
            .chunks(self.shards)
            .map(|g| g.iter().map(NodeProcess::addr).collect())
            .collect()
    }
}

/// A node that accepts connections and never answers: it reads and keeps
/// what it is sent, and holds every socket open until it is dropped.
#[derive(Debug)]
pub struct SilentNode {
    addr: SocketAddr,
    state: std::sync::Arc<std::sync::Mutex<Silent>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What a [`SilentNode`] holds: its connections and what came on them.
#[derive(Debug, Default)]
struct Silent {
    conns: Vec<TcpStream>,
    accepted: usize,
    received: Vec<u8>,
}

impl Silent {
    /// Reads whatever is waiting on every connection.
    fn drain(&mut self) {
        let mut chunk = [0u8; 4096];
        for s in &mut self.conns {
            while let Ok(n) = s.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                self.received.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

impl SilentNode {
    /// Listens on a free loopback port.
    pub fn start() -> SilentNode {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let state = std::sync::Arc::new(std::sync::Mutex::new(Silent::default()));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (shared, halt) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                {
                    let mut state = shared.lock().expect("silent node state");
                    if let Ok((s, _)) = listener.accept() {
                        let _ = s.set_nonblocking(true);
                        state.conns.push(s);
                        state.accepted += 1;
                    }
                    // Read so the sender's buffers never fill; answer
                    // nothing.
                    state.drain();
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        SilentNode {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// Its address, `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// How many connections it has accepted.
    pub fn accepted(&self) -> usize {
        self.state.lock().expect("silent node state").accepted
    }

    /// Everything it has been sent, on every connection, up to now: what
    /// the sockets hold is read first, so bytes a client wrote before this
    /// call are in it, whether or not the node's thread has come by yet.
    pub fn received(&self) -> Vec<u8> {
        let mut state = self.state.lock().expect("silent node state");
        state.drain();
        state.received.clone()
    }
}

impl Drop for SilentNode {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A private temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty directory named after `name` and this process.
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ember-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Its path as text, for configuration lines.
    pub fn str(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

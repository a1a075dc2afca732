//! Helpers shared by Ember's end-to-end tests: real server processes on
//! loopback ports, started fresh per test and killed when dropped.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to start accepting connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// `["--requirepass", "secret"]`).
    ///
    /// Panics with a hint if the binary is missing: `scripts/test` installs
    /// it.
    pub fn start(extra: &[&str]) -> RedisServer {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("ember-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}); scripts/test installs it (Debian package redis-server)")
            });
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let server = RedisServer { child, addr, dir };
        server.wait_ready();
        server
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A new connection with read and write timeouts set.
    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(self.addr) {
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut reply = [0u8; 64];
                // A loading server answers -LOADING; wait for +PONG, or
                // -NOAUTH from a server with a password.
                let ready = |r: &[u8]| r.starts_with(b"+PONG") || r.starts_with(b"-NOAUTH");
                if s.write_all(b"PING\r\n").is_ok()
                    && matches!(s.read(&mut reply), Ok(n) if ready(&reply[..n]))
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server on {} did not start within {START_TIMEOUT:?}",
            self.addr
        );
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
}

impl EmberServer {
    /// Starts a server configured by redis.conf-style `lines`
    /// (`["requirepass secret"]`).
    pub fn start(lines: &[&str]) -> EmberServer {
        let mut config = server::Config::default();
        config
            .load_file(&lines.join("\n"))
            .expect("valid test configuration");
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
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
                server::run(listener, config, async {
                    let _ = stopped.await;
                })
                .await;
            });
        });
        EmberServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
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

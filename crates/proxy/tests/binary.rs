//! The `ember-proxy` binary as an operator runs it: in front of a real
//! `redis-server`, bad flags, and SIGTERM with a blocked client waiting.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("ephemeral port")
}

/// A process killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A redis-server killed on drop, its directory removed after it.
struct Redis {
    _process: Process,
    dir: std::path::PathBuf,
}

impl Drop for Redis {
    fn drop(&mut self) {
        // The process is killed after this body runs: kill it first.
        let _ = self._process.0.kill();
        let _ = self._process.0.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Connects once `port` listens (bounded wait).
fn connect(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            return s;
        }
        assert!(Instant::now() < deadline, "nothing listened on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `request` and reads until `want` bytes came.
fn ask(s: &mut TcpStream, request: &[u8], want: usize) -> Vec<u8> {
    s.write_all(request).unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 512];
    while reply.len() < want {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&reply));
        reply.extend_from_slice(&buf[..n]);
    }
    reply
}

fn redis() -> (Redis, u16) {
    let dir = std::env::temp_dir().join(format!(
        "ember-proxy-bin-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (process, port) = listening(|port| {
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server")
    });
    (
        Redis {
            _process: process,
            dir,
        },
        port,
    )
}

/// Starts a server with `start(port)` on a free port and waits until it
/// listens. A port found free may be taken again before the server binds
/// it (by another test's outgoing connection, whose ephemeral port comes
/// from the same range): a server that exits is started again on another.
fn listening(start: impl Fn(u16) -> Child) -> (Process, u16) {
    for _ in 0..5 {
        let port = free_port();
        let mut process = Process(start(port));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return (process, port);
            }
            if process.0.try_wait().ok().flatten().is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "nothing listened on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("no server started in five tries");
}

fn proxy(args: &[&str]) -> (Process, u16) {
    listening(|port| {
        Command::new(env!("CARGO_BIN_EXE_ember-proxy"))
            .args(["--port", &port.to_string()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ember-proxy")
    })
}

#[test]
fn serves_and_drains_on_sigterm() {
    drains_on_sigterm("2");
}

/// With one thread the proxy runs on a current-thread runtime.
#[test]
fn serves_and_drains_on_sigterm_on_one_thread() {
    drains_on_sigterm("1");
}

fn drains_on_sigterm(threads: &str) {
    let (_redis, node) = redis();
    let replica = format!("127.0.0.1:{node}");
    let (mut proxy, port) = proxy(&["--replica", &replica, "--threads", threads]);
    let mut s = connect(port);
    assert_eq!(
        ask(&mut s, b"SET k v\r\nGET k\r\nPING\r\n", 16),
        b"+OK\r\n$1\r\nv\r\n+PONG\r\n"
    );
    // A client blocked in BLPOP when the proxy is told to stop: it gets
    // its answer (the push below), then the proxy exits cleanly.
    let mut blocked = connect(port);
    blocked.write_all(b"BLPOP q 5\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let status = Command::new("kill")
        .args(["-TERM", &proxy.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut direct = connect(node);
    ask(&mut direct, b"LPUSH q job\r\n", 4);
    let mut reply = Vec::new();
    let mut buf = [0u8; 64];
    while reply.len() < 20 {
        let n = blocked.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&reply));
        reply.extend_from_slice(&buf[..n]);
    }
    assert_eq!(reply, b"*2\r\n$1\r\nq\r\n$3\r\njob\r\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = proxy.0.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "the proxy did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_flags_are_usage_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_ember-proxy"))
        .args(["--replica", "no-port-here"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_ember-proxy"))
        .args(["--write-policy", "most"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'most'"));
}

/// `--config FILE`: the fleet and the proxy's own settings in one TOML
/// file; a flag overrides the file; a mistake in it is a usage error that
/// names it.
#[test]
fn takes_its_settings_from_a_config_file() {
    let (_redis, node) = redis();
    let dir = std::env::temp_dir().join(format!(
        "ember-proxy-conf-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("proxy.toml");
    let (_proxy, port) = listening(|port| {
        std::fs::write(
            &file,
            format!(
                "replicas = [[\"127.0.0.1:{node}\"]]\ntimeout = \"2s\"\n\n[proxy]\nport = {port}\nrequirepass = \"from-file\"\nmaxclients = 100\nthreads = 1\nclient_output_buffer_limit = \"pubsub 1mb 0 0\"\n"
            ),
        )
        .unwrap();
        Command::new(env!("CARGO_BIN_EXE_ember-proxy"))
            .arg("--config")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ember-proxy")
    });
    let mut s = connect(port);
    assert_eq!(
        ask(&mut s, b"GET k\r\n", 34),
        b"-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        ask(&mut s, b"AUTH from-file\r\nSET k v\r\nGET k\r\n", 17),
        b"+OK\r\n+OK\r\n$1\r\nv\r\n"
    );
    // A flag wins over the file.
    let (_second, flagged) = listening(|flagged| {
        Command::new(env!("CARGO_BIN_EXE_ember-proxy"))
            .arg("--config")
            .arg(&file)
            .args(["--port", &flagged.to_string(), "--requirepass", "from-flag"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ember-proxy")
    });
    let mut s = connect(flagged);
    assert_eq!(
        ask(&mut s, b"AUTH from-flag\r\nGET k\r\n", 12),
        b"+OK\r\n$1\r\nv\r\n"
    );
    // Mistakes name the file.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "replicas = [[\"127.0.0.1:1\"]]\n[proxy]\nprot = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ember-proxy"))
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("prot"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_ember-proxy"))
        .arg("--config")
        .arg(&file)
        .args(["--client-output-buffer-limit", "normal 0 0 0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pubsub class only"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

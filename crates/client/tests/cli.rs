//! The `ember-cli` binary itself: arguments, exit codes, and standard input
//! and output that are pipes. (Its output against `redis-cli`'s and the
//! cluster paths are in the workspace's end-to-end tests.)

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn cli(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ember-cli"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ember-cli starts");
    child
        .stdin
        .take()
        .expect("a pipe")
        .write_all(stdin)
        .expect("write standard input");
    child.wait_with_output().expect("ember-cli ends")
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8")
}

/// A `redis-server` on a free port, killed on drop.
struct Redis(Child, u16);

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let redis = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .map(|child| Redis(child, port))
            .expect("redis-server starts (scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) {
                let mut reply = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut reply).is_ok() {
                    return redis;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn locate_help_and_usage() {
    let out = cli(
        &[
            "--replica",
            "a:1,b:1",
            "--replica",
            "c:1,d:1",
            "locate",
            "foo",
        ],
        b"",
    );
    assert!(out.status.success());
    let line = text(&out.stdout);
    assert!(
        line == "foo\t0\ta:1\tc:1\n" || line == "foo\t1\tb:1\td:1\n",
        "{line:?}"
    );
    let help = cli(&["--help"], b"");
    assert!(help.status.success());
    assert!(text(&help.stdout).contains("--write-policy"));
    let bad = cli(&["--write-policy", "most", "GET", "k"], b"");
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("most"));
}

#[test]
fn no_server() {
    let out = cli(&["--replica", "127.0.0.1:1", "GET", "k"], b"");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("Could not connect to 127.0.0.1:1: "),
        "{err}"
    );
}

#[test]
fn pipes_are_raw_and_stdin_is_pipelined() {
    let redis = Redis::start();
    let node = format!("127.0.0.1:{}", redis.1);
    let out = cli(
        &["--replica", &node],
        b"SET a \"x y\"\nGET a\nGET nothing\nLPUSH a z\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "OK\nx y\n\nWRONGTYPE Operation against a key holding the wrong kind of value\n\n"
    );
    let out = cli(&["--replica", &node, "GET", "a"], b"");
    assert_eq!(text(&out.stdout), "x y\n");
    let out = cli(&["--replica", &node, "--no-raw", "GET", "a"], b"");
    assert_eq!(text(&out.stdout), "\"x y\"\n");
}

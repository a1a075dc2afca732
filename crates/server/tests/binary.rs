//! The `ember-server` binary as an operator runs it: flags, a config file,
//! SIGTERM and SHUTDOWN.

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

fn start(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ember-server"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ember-server")
}

/// Connects once the server listens (bounded wait).
fn connect(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "ember-server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) until the server has loaded its file: PING answers
/// `-LOADING` until then.
fn wait_loaded(s: &mut TcpStream) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while ask(s, b"PING\r\n") != b"+PONG\r\n" {
        assert!(Instant::now() < deadline, "the file never finished loading");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// INFO `section`'s text (a bulk reply, read whole).
fn info(s: &mut TcpStream, section: &str) -> String {
    s.write_all(format!("INFO {section}\r\n").as_bytes())
        .unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap_or(0);
        assert!(n > 0, "no INFO reply");
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply).into_owned();
        if let Some((header, body)) = text.split_once("\r\n")
            && let Ok(len) = header.trim_start_matches('$').parse::<usize>()
            && body.len() >= len + 2
        {
            return body.to_string();
        }
    }
}

fn ask(s: &mut TcpStream, request: &[u8]) -> Vec<u8> {
    s.write_all(request).unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap_or(0);
    buf[..n].to_vec()
}

/// Waits (bounded) for the process to exit; returns whether it exited
/// successfully.
fn exits_cleanly(child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn flags_and_sigterm() {
    let port = free_port();
    let mut child = start(&["--port", &port.to_string(), "--databases", "2"]);
    let mut c = connect(port);
    assert_eq!(ask(&mut c, b"PING\r\n"), b"+PONG\r\n");
    assert_eq!(
        ask(&mut c, b"SELECT 2\r\n"),
        b"-ERR DB index is out of range\r\n"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        exits_cleanly(&mut child),
        "SIGTERM did not stop the server cleanly"
    );
}

#[test]
fn config_file_and_shutdown_command() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("ember-conf-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("ember.conf");
    std::fs::write(&conf, format!("# test\nport {port}\nrequirepass s3cret\n")).unwrap();
    let mut child = start(&[conf.to_str().unwrap()]);
    let mut c = connect(port);
    assert_eq!(
        ask(&mut c, b"PING\r\n"),
        b"-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(ask(&mut c, b"AUTH s3cret\r\n"), b"+OK\r\n");
    // SHUTDOWN replies nothing: the connection closes as the server stops.
    assert_eq!(ask(&mut c, b"SHUTDOWN NOSAVE\r\n"), b"");
    assert!(
        exits_cleanly(&mut child),
        "SHUTDOWN did not stop the server cleanly"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_bad_config_file_is_refused() {
    let dir = std::env::temp_dir().join(format!("ember-badconf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("bad.conf");
    std::fs::write(&conf, "nosuchdirective 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ember-server"))
        .arg(&conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuchdirective"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn dir_and_dbfilename_flags_save_and_load_across_restarts() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("ember-rdb-bin-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let args = [
        "--port",
        &port.to_string(),
        "--dir",
        dir.to_str().unwrap(),
        "--dbfilename",
        "data.rdb",
    ];
    let mut child = start(&args);
    let mut c = connect(port);
    assert_eq!(ask(&mut c, b"SET k v\r\n"), b"+OK\r\n");
    assert_eq!(ask(&mut c, b"RPUSH l a b c\r\n"), b":3\r\n");
    assert_eq!(ask(&mut c, b"SAVE\r\n"), b"+OK\r\n");
    assert!(dir.join("data.rdb").exists());
    assert_eq!(ask(&mut c, b"SET later v\r\n"), b"+OK\r\n");
    assert_eq!(ask(&mut c, b"SHUTDOWN NOSAVE\r\n"), b"");
    assert!(exits_cleanly(&mut child));

    // What SAVE wrote comes back; what came after it does not.
    let mut child = start(&args);
    let mut c = connect(port);
    wait_loaded(&mut c);
    assert_eq!(ask(&mut c, b"GET k\r\n"), b"$1\r\nv\r\n");
    assert_eq!(ask(&mut c, b"LLEN l\r\n"), b":3\r\n");
    assert_eq!(ask(&mut c, b"EXISTS later\r\n"), b":0\r\n");
    // SHUTDOWN SAVE saves on the way out.
    assert_eq!(ask(&mut c, b"SET k2 v2\r\n"), b"+OK\r\n");
    assert_eq!(ask(&mut c, b"SHUTDOWN SAVE\r\n"), b"");
    assert!(exits_cleanly(&mut child));

    let mut child = start(&args);
    let mut c = connect(port);
    wait_loaded(&mut c);
    assert_eq!(ask(&mut c, b"GET k2\r\n"), b"$2\r\nv2\r\n");
    assert_eq!(ask(&mut c, b"SHUTDOWN NOSAVE\r\n"), b"");
    assert!(exits_cleanly(&mut child));
    let _ = std::fs::remove_dir_all(dir);
}

/// Like redis-server, the binary answers while its file loads: `-LOADING`
/// to most commands, INFO and CONFIG served. `key-load-delay` (Redis's
/// own test setting) holds the load until CONFIG SET lifts it, so the
/// test sees both states without timing anything.
#[test]
fn commands_get_loading_while_the_file_loads() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("ember-loading-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port_arg = port.to_string();
    let args = ["--port", &port_arg, "--dir", dir.to_str().unwrap()];
    let mut child = start(&args);
    let mut c = connect(port);
    assert_eq!(ask(&mut c, b"MSET a 1 b 2 c 3\r\n"), b"+OK\r\n");
    assert_eq!(ask(&mut c, b"SAVE\r\n"), b"+OK\r\n");
    assert_eq!(ask(&mut c, b"SHUTDOWN NOSAVE\r\n"), b"");
    assert!(exits_cleanly(&mut child));

    let mut slow = args.to_vec();
    slow.extend(["--set", "key-load-delay", "2000000000"]);
    let mut child = start(&slow);
    let mut c = connect(port);
    let loading = b"-LOADING Redis is loading the dataset in memory\r\n";
    assert_eq!(ask(&mut c, b"PING\r\n"), loading);
    assert_eq!(ask(&mut c, b"GET a\r\n"), loading);
    assert_eq!(ask(&mut c, b"DBSIZE\r\n"), loading);
    assert_eq!(ask(&mut c, b"ECHO x\r\n"), b"$1\r\nx\r\n");
    assert!(info(&mut c, "persistence").contains("loading:1"));
    // A transaction of commands served while loading runs; one with GET
    // is refused when GET is queued.
    assert_eq!(ask(&mut c, b"MULTI\r\n"), b"+OK\r\n");
    assert_eq!(ask(&mut c, b"GET a\r\n"), loading);
    assert_eq!(ask(&mut c, b"DISCARD\r\n"), b"+OK\r\n");
    assert_eq!(ask(&mut c, b"CONFIG SET key-load-delay 0\r\n"), b"+OK\r\n");
    wait_loaded(&mut c);
    assert_eq!(ask(&mut c, b"GET c\r\n"), b"$1\r\n3\r\n");
    assert!(info(&mut c, "persistence").contains("loading:0"));
    assert_eq!(ask(&mut c, b"SHUTDOWN NOSAVE\r\n"), b"");
    assert!(exits_cleanly(&mut child));

    // SHUTDOWN SAVE while loading saves nothing over the file.
    let mut child = start(&slow);
    let mut c = connect(port);
    assert_eq!(ask(&mut c, b"PING\r\n"), loading);
    assert_eq!(ask(&mut c, b"SHUTDOWN SAVE\r\n"), b"");
    assert!(exits_cleanly(&mut child));
    let mut child = start(&args);
    let mut c = connect(port);
    wait_loaded(&mut c);
    assert_eq!(ask(&mut c, b"DBSIZE\r\n"), b":3\r\n");
    assert_eq!(ask(&mut c, b"SHUTDOWN NOSAVE\r\n"), b"");
    assert!(exits_cleanly(&mut child));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_damaged_rdb_file_stops_startup_with_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("ember-rdb-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (bytes, reason) in [
        // Cut short after a SELECTDB.
        (
            &b"REDIS0010\xfe\x00\x00\x01k"[..],
            "unexpected end of RDB data",
        ),
        (b"REDIS0042", "Can't handle RDB format version 42"),
        (b"not an rdb file", "signature"),
    ] {
        std::fs::write(dir.join("dump.rdb"), bytes).unwrap();
        let port = free_port().to_string();
        let out = Command::new(env!("CARGO_BIN_EXE_ember-server"))
            .args(["--port", &port, "--dir", dir.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("cannot load the RDB file"), "{stderr}");
        assert!(stderr.contains(reason), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

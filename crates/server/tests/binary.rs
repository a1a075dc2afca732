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
    let mut child = start(&[
        "--port",
        &port.to_string(),
        "--databases",
        "2",
        "--save",
        "",
    ]);
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
        // The log goes to standard output (`logfile ""`), as Redis's.
        let stderr = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).into_owned();
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("cannot load the RDB file"), "{stderr}");
        assert!(stderr.contains(reason), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Starts the binary with its log (standard output and error) in
/// `dir/log`.
fn start_logged(args: &[&str], dir: &std::path::Path) -> Child {
    let log = std::fs::File::create(dir.join("log")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_ember-server"))
        .args(args)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start ember-server")
}

/// Whether a `redis-server` loads `dir/dump.rdb` with `key` = `value` in
/// it; `None` when redis-server is not installed.
fn redis_loads(dir: &std::path::Path, key: &str, value: &str) -> Option<bool> {
    let port = free_port();
    let mut redis = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut c = connect(port);
    wait_loaded(&mut c);
    let want = format!("${}\r\n{value}\r\n", value.len());
    let got = ask(&mut c, format!("GET {key}\r\n").as_bytes());
    let _ = redis.kill();
    let _ = redis.wait();
    Some(got == want.as_bytes())
}

#[test]
fn sigterm_with_save_points_saves_what_redis_loads() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("ember-sigterm-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port_arg = port.to_string();
    // The default save points are set: no `--save`.
    let args = ["--port", &port_arg, "--dir", dir.to_str().unwrap()];
    let mut child = start_logged(&args, &dir);
    let mut c = connect(port);
    assert_eq!(ask(&mut c, b"SET greeting hello\r\n"), b"+OK\r\n");
    assert!(!dir.join("dump.rdb").exists());
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(exits_cleanly(&mut child), "SIGTERM did not stop the server");
    let log = std::fs::read_to_string(dir.join("log")).unwrap();
    for line in [
        "Received SIGTERM scheduling shutdown...",
        "User requested shutdown...",
        "Saving the final RDB snapshot before exiting.",
        "DB saved on disk",
    ] {
        assert!(log.contains(line), "no {line:?} in the log:\n{log}");
    }
    // No colour in a log that is a file.
    assert!(!log.contains('\u{1b}'), "ANSI codes in the log:\n{log}");
    assert!(dir.join("dump.rdb").exists(), "no dump.rdb after SIGTERM");
    if let Some(loaded) = redis_loads(&dir, "greeting", "hello") {
        assert!(loaded, "redis-server did not load Ember's final save");
    }
    // Nothing else is left in the directory (no temporary file).
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["dump.rdb", "log"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn shutdown_saves_with_save_points_and_nosave_does_not() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("ember-shutdown-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port_arg = port.to_string();
    let args = [
        "--port",
        &port_arg,
        "--dir",
        dir.to_str().unwrap(),
        "--save",
        "3600",
        "1",
    ];
    // SHUTDOWN NOSAVE: nothing written.
    let mut child = start_logged(&args, &dir);
    let mut c = connect(port);
    assert_eq!(ask(&mut c, b"SET k 1\r\n"), b"+OK\r\n");
    assert_eq!(
        ask(&mut c, b"SHUTDOWN SAVE NOSAVE\r\n"),
        b"-ERR syntax error\r\n"
    );
    assert_eq!(
        ask(&mut c, b"SHUTDOWN ABORT\r\n"),
        b"-ERR No shutdown in progress.\r\n"
    );
    assert_eq!(ask(&mut c, b"SHUTDOWN NOSAVE\r\n"), b"");
    assert!(exits_cleanly(&mut child));
    assert!(!dir.join("dump.rdb").exists(), "SHUTDOWN NOSAVE saved");
    // A plain SHUTDOWN saves, since save points are set.
    let mut child = start_logged(&args, &dir);
    let mut c = connect(port);
    assert_eq!(ask(&mut c, b"SET k 2\r\n"), b"+OK\r\n");
    assert_eq!(ask(&mut c, b"SHUTDOWN\r\n"), b"");
    assert!(exits_cleanly(&mut child));
    assert!(dir.join("dump.rdb").exists(), "SHUTDOWN did not save");
    // A save that fails keeps the server running (without FORCE).
    let mut child = start_logged(&args, &dir);
    let mut c = connect(port);
    wait_loaded(&mut c);
    std::fs::create_dir(dir.join("blocked")).unwrap();
    assert_eq!(
        ask(&mut c, b"CONFIG SET dbfilename blocked\r\n"),
        b"+OK\r\n"
    );
    assert_eq!(
        ask(&mut c, b"SHUTDOWN\r\n"),
        b"-ERR Errors trying to SHUTDOWN. Check logs.\r\n"
    );
    assert_eq!(ask(&mut c, b"SET k 3\r\n"), b"+OK\r\n");
    assert_eq!(ask(&mut c, b"SHUTDOWN FORCE\r\n"), b"");
    assert!(exits_cleanly(&mut child));
    let log = std::fs::read_to_string(dir.join("log")).unwrap();
    assert!(log.contains("Error trying to save the DB, can't exit."));
    assert!(log.contains("Error trying to save the DB. Exit anyway."));
    let _ = std::fs::remove_dir_all(dir);
}

/// The files in `dir` and below, by path relative to it.
fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() {
            out.extend(
                files_in(&entry.path())
                    .into_iter()
                    .map(|f| format!("{name}/{f}")),
            );
        } else {
            out.push(name);
        }
    }
    out.sort();
    out
}

#[test]
fn stopping_during_a_bgsave_or_a_rewrite_leaves_no_temporary_file() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("ember-stopsave-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port_arg = port.to_string();
    // 100 ms a key: a save of 300 keys would take half a minute.
    let args = [
        "--port",
        &port_arg,
        "--dir",
        dir.to_str().unwrap(),
        "--save",
        "",
        "--rdb-key-save-delay",
        "100000",
    ];
    // SHUTDOWN NOSAVE during a BGSAVE.
    let mut child = start_logged(&args, &dir);
    let mut c = connect(port);
    for i in 0..300 {
        assert_eq!(
            ask(&mut c, format!("SET k{i} v\r\n").as_bytes()),
            b"+OK\r\n"
        );
    }
    assert_eq!(
        ask(&mut c, b"BGSAVE\r\n"),
        b"+Background saving started\r\n"
    );
    assert_eq!(ask(&mut c, b"SHUTDOWN NOSAVE\r\n"), b"");
    assert!(
        exits_cleanly(&mut child),
        "SHUTDOWN did not stop the server"
    );
    let log = std::fs::read_to_string(dir.join("log")).unwrap();
    assert!(
        log.contains("There is a child saving an .rdb. Killing it!"),
        "{log}"
    );
    assert_eq!(files_in(&dir), ["log"]);
    // SIGTERM during an AOF rewrite.
    let mut child = start_logged(&args, &dir);
    let mut c = connect(port);
    for i in 0..300 {
        assert_eq!(
            ask(&mut c, format!("SET k{i} v\r\n").as_bytes()),
            b"+OK\r\n"
        );
    }
    assert_eq!(
        ask(&mut c, b"BGREWRITEAOF\r\n"),
        b"+Background append only file rewriting started\r\n"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(exits_cleanly(&mut child), "SIGTERM did not stop the server");
    let log = std::fs::read_to_string(dir.join("log")).unwrap();
    assert!(
        log.contains("There is a child rewriting the AOF. Killing it!"),
        "{log}"
    );
    let left = files_in(&dir);
    assert!(
        !left.iter().any(|f| f.contains("temp")),
        "temporary files left: {left:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

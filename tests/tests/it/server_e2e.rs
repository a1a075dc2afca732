//! Ember's server through real clients (the `redis` crate, `redis-cli`,
//! `redis-benchmark`) and through hostile raw sockets.

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use ember_tests::{EmberServer, call, connect, exchange, is_closed, read_reply};

#[test]
fn redis_crate_client_works_unchanged() {
    let server = EmberServer::start(&[]);
    let client = redis::Client::open(server.url()).expect("client");
    let mut con = client.get_connection().expect("connection");
    let _: () = redis::cmd("SET")
        .arg("greeting")
        .arg("hello")
        .query(&mut con)
        .unwrap();
    let got: String = redis::cmd("GET").arg("greeting").query(&mut con).unwrap();
    assert_eq!(got, "hello");
    let n: i64 = redis::cmd("INCRBY")
        .arg("n")
        .arg(41)
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 41);
    let missing: Option<String> = redis::cmd("GET").arg("missing").query(&mut con).unwrap();
    assert_eq!(missing, None);
    let values: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&["greeting", "nope", "n"])
        .query(&mut con)
        .unwrap();
    assert_eq!(values, [Some("hello".into()), None, Some("41".into())]);
    let err = redis::cmd("INCR")
        .arg("greeting")
        .query::<i64>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("not an integer"), "{err}");
    // A pipeline of 1,000 commands answered in order.
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("SET").arg(format!("key:{i}")).arg(i).ignore();
    }
    pipe.cmd("DBSIZE");
    let (size,): (i64,) = pipe.query(&mut con).unwrap();
    assert_eq!(size, 1002);
}

#[test]
fn redis_cli_and_redis_benchmark_smoke() {
    let server = EmberServer::start(&[]);
    let port = server.addr().port().to_string();
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port])
            .args(args)
            .output()
            .expect("redis-cli runs (scripts/test installs redis-tools)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(cli(&["SET", "k", "v"]), "OK\n");
    assert_eq!(cli(&["GET", "k"]), "v\n");
    assert_eq!(cli(&["INCR", "c"]), "1\n");
    assert_eq!(cli(&["TTL", "k"]), "-1\n");
    assert!(cli(&["INFO", "server"]).contains("redis_version:7.0.15"));
    assert!(cli(&["NOSUCH"]).starts_with("ERR unknown command 'NOSUCH'"));
    // redis-benchmark's own checks pass, and every request is answered.
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-q",
            "-n",
            "20000",
            "-c",
            "20",
            "-P",
            "8",
        ])
        .args(["-t", "set,get,incr,mset"])
        .output()
        .expect("redis-benchmark runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for test in ["SET: ", "GET: ", "INCR: ", "MSET (10 keys): "] {
        assert!(text.contains(test), "{test} missing in {text}");
    }
}

#[test]
fn requirepass_allows_only_auth_first() {
    let server = EmberServer::start(&["requirepass secret"]);
    let mut c = server.connect();
    assert_eq!(
        &call(&mut c, &[b"GET", b"k"])[..],
        b"-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        &call(&mut c, &[b"AUTH", b"wrong"])[..],
        &b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"[..]
    );
    // Before AUTH, Redis's tighter protocol limits apply.
    let mut big = server.connect();
    let reply = exchange(&mut big, b"*20\r\n", 100);
    assert_eq!(
        &reply[..],
        b"-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
    assert!(is_closed(&mut big));
    assert_eq!(&call(&mut c, &[b"AUTH", b"secret"])[..], b"+OK\r\n");
    assert_eq!(&call(&mut c, &[b"GET", b"k"])[..], b"$-1\r\n");
    let mut h = server.connect();
    assert!(call(&mut h, &[b"HELLO", b"3", b"AUTH", b"default", b"secret"]).starts_with(b"%7\r\n"));
}

#[test]
fn quit_kill_and_maxclients() {
    let server = EmberServer::start(&["maxclients 3"]);
    let mut a = server.connect();
    assert_eq!(&exchange(&mut a, b"QUIT\r\n", 5)[..], b"+OK\r\n");
    assert!(is_closed(&mut a));

    let mut b = server.connect();
    let mut killer = server.connect();
    let id = String::from_utf8_lossy(&call(&mut b, &[b"CLIENT", b"ID"])[1..])
        .trim()
        .to_string();
    assert_eq!(
        &call(&mut killer, &[b"CLIENT", b"KILL", b"ID", id.as_bytes()])[..],
        b":1\r\n"
    );
    assert!(is_closed(&mut b));

    // Three slots: killer plus two more; the fourth is told the server is full.
    let _c = server.connect();
    let mut d = server.connect();
    call(&mut d, &[b"PING"]);
    let mut e = server.connect();
    let reply = exchange(&mut e, b"PING\r\n", 64);
    assert_eq!(&reply[..], b"-ERR max number of clients reached\r\n");
}

/// A client killed while its requests keep arriving is closed all the same
/// (the connection's waits favour reading), and SHUTDOWN closes an idle
/// client.
#[test]
fn kills_and_shutdown_reach_busy_and_idle_clients() {
    let server = EmberServer::start(&[]);
    let mut busy = server.connect();
    let id = String::from_utf8_lossy(&call(&mut busy, &[b"CLIENT", b"ID"])[1..])
        .trim()
        .to_string();
    busy.set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    busy.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut reader = busy.try_clone().unwrap();
    let batch = b"PING\r\n".repeat(64);
    let writer = std::thread::spawn(move || while busy.write_all(&batch).is_ok() {});
    // Ends with the connection: true if closed or reset, false on a timeout.
    let drained = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut seen = 0usize;
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return (true, seen),
                Ok(n) => seen += n,
                Err(e) => {
                    let timeout = matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    );
                    return (!timeout, seen);
                }
            }
        }
    });
    let mut killer = server.connect();
    // The busy client is being served before it is killed.
    let deadline = Instant::now() + Duration::from_secs(20);
    let processed = |c: &mut std::net::TcpStream| -> u64 {
        let info = String::from_utf8_lossy(&call(c, &[b"INFO", b"stats"])).into_owned();
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    while processed(&mut killer) < 1000 {
        assert!(Instant::now() < deadline, "the PINGs never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        &call(&mut killer, &[b"CLIENT", b"KILL", b"ID", id.as_bytes()])[..],
        b":1\r\n"
    );
    let (closed, seen) = drained.join().unwrap();
    assert!(
        closed,
        "the killed client was never closed ({seen} bytes read)"
    );
    writer.join().unwrap();

    let mut idle = server.connect();
    call(&mut idle, &[b"PING"]);
    let _ = exchange(&mut killer, b"SHUTDOWN NOSAVE\r\n", 64);
    assert!(is_closed(&mut idle));
}

#[test]
fn expired_keys_are_reclaimed_without_reads() {
    let server = EmberServer::start(&[]);
    let mut c = server.connect();
    // Paused (DEBUG SET-ACTIVE-EXPIRE 0, as Redis's tests use it), the
    // cycle leaves expired keys counted.
    assert_eq!(
        &call(&mut c, &[b"DEBUG", b"SET-ACTIVE-EXPIRE", b"0"])[..],
        b"+OK\r\n"
    );
    for i in 0..500 {
        let key = format!("temp:{i}");
        call(&mut c, &[b"SET", key.as_bytes(), b"v", b"PX", b"50"]);
    }
    call(&mut c, &[b"SET", b"kept", b"v"]);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(&call(&mut c, &[b"DBSIZE"])[..], b":501\r\n");
    call(&mut c, &[b"DEBUG", b"SET-ACTIVE-EXPIRE", b"1"]);
    // Nobody reads the keys; the active cycle must still delete them.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let size = call(&mut c, &[b"DBSIZE"]);
        if &size[..] == b":1\r\n" {
            break;
        }
        assert!(Instant::now() < deadline, "still {size:?} keys after 10 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let info = call(&mut c, &[b"INFO", b"stats"]);
    assert!(
        String::from_utf8_lossy(&info).contains("expired_keys:500"),
        "{info:?}"
    );
}

#[test]
fn hostile_input_never_stalls_other_clients() {
    let server = EmberServer::start(&[]);
    let mut healthy = server.connect();

    // A header claiming half a gigabyte, then nothing: no allocation, and
    // the connection just waits.
    let mut claim = server.connect();
    claim.write_all(b"*1\r\n$536870912\r\nabc").unwrap();
    // Garbage and protocol errors get Redis's reply and a close.
    let mut garbage = server.connect();
    assert_eq!(
        &exchange(&mut garbage, b"*1\r\n$x\r\n", 64)[..],
        b"-ERR Protocol error: invalid bulk length\r\n"
    );
    assert!(is_closed(&mut garbage));
    // A client that vanishes mid-frame.
    let mut vanish = server.connect();
    vanish.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk").unwrap();
    drop(vanish);
    // A slow sender, one byte at a time.
    let mut slow = server.connect();
    for &b in b"*2\r\n$4\r\nECHO\r\n$5\r\nslow!\r\n" {
        slow.write_all(&[b]).unwrap();
        assert_eq!(&call(&mut healthy, &[b"PING"])[..], b"+PONG\r\n");
    }
    assert_eq!(&read_reply(&mut slow)[..], b"$5\r\nslow!\r\n");
    // 2,000 idle connections.
    let idle: Vec<_> = (0..2000).map(|_| connect(server.addr())).collect();
    assert_eq!(&call(&mut healthy, &[b"PING"])[..], b"+PONG\r\n");
    drop(idle);
    drop(claim);
    assert_eq!(
        &call(&mut healthy, &[b"ECHO", b"still here"])[..],
        b"$10\r\nstill here\r\n"
    );
}

#[test]
fn big_pipelines_and_big_values() {
    let server = EmberServer::start(&[]);
    let mut c = server.connect();
    // 100,000 commands in one write; the replies stream back in order.
    let mut batch = Vec::new();
    for _ in 0..100_000 {
        batch.extend_from_slice(b"*2\r\n$4\r\nINCR\r\n$7\r\ncounter\r\n");
    }
    let writer = {
        let mut w = c.try_clone().unwrap();
        std::thread::spawn(move || w.write_all(&batch).unwrap())
    };
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let want_last = b":100000\r\n";
    while !got.ends_with(want_last) {
        let n = c.read(&mut chunk).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&chunk[..n]);
    }
    writer.join().unwrap();
    assert_eq!(got.iter().filter(|&&b| b == b':').count(), 100_000);

    // A 64 MiB value in and out.
    let value = vec![b'v'; 64 << 20];
    assert_eq!(&call(&mut c, &[b"SET", b"big", &value])[..], b"+OK\r\n");
    assert_eq!(&call(&mut c, &[b"STRLEN", b"big"])[..], b":67108864\r\n");
    let reply = call(&mut c, &[b"GET", b"big"]);
    assert_eq!(reply.len(), (64 << 20) + 13);
    assert!(reply[11..11 + 1000].iter().all(|&b| b == b'v'));
}

/// Waits (bounded) until the server reports `n` blocked clients.
fn await_blocked(c: &mut std::net::TcpStream, n: usize) {
    let want = format!("blocked_clients:{n}\r\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&call(c, &[b"INFO", b"clients"])).contains(&want) {
        assert!(Instant::now() < deadline, "never saw {want:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn send(c: &mut std::net::TcpStream, args: &[&[u8]]) {
    let mut request = bytes::BytesMut::new();
    resp::encode_command(&mut request, args);
    c.write_all(&request).unwrap();
}

#[test]
fn blocked_clients_are_served_first_come_first_served() {
    let server = EmberServer::start(&[]);
    let mut admin = server.connect();
    let mut first = server.connect();
    let mut second = server.connect();
    send(&mut first, &[b"BLPOP", b"queue", b"0"]);
    await_blocked(&mut admin, 1);
    send(&mut second, &[b"BRPOP", b"other", b"queue", b"0"]);
    await_blocked(&mut admin, 2);
    // One push of two elements: the older waiter gets the first.
    assert_eq!(
        &call(&mut admin, &[b"RPUSH", b"queue", b"a", b"b"])[..],
        b":2\r\n"
    );
    assert_eq!(
        &read_reply(&mut first)[..],
        b"*2\r\n$5\r\nqueue\r\n$1\r\na\r\n"
    );
    assert_eq!(
        &read_reply(&mut second)[..],
        b"*2\r\n$5\r\nqueue\r\n$1\r\nb\r\n"
    );
    await_blocked(&mut admin, 0);
    assert_eq!(&call(&mut admin, &[b"EXISTS", b"queue"])[..], b":0\r\n");
}

#[test]
fn a_pushed_element_goes_to_the_waiter_not_to_the_next_command() {
    let server = EmberServer::start(&[]);
    let mut admin = server.connect();
    let mut waiter = server.connect();
    send(&mut waiter, &[b"BLPOP", b"q", b"0"]);
    await_blocked(&mut admin, 1);
    // Push and pop in one pipelined write: Redis hands the element to the
    // blocked client before the LPOP runs.
    let replies = exchange(&mut admin, b"RPUSH q x\r\nLPOP q\r\n", 9);
    assert_eq!(&replies[..], b":1\r\n$-1\r\n");
    assert_eq!(
        &read_reply(&mut waiter)[..],
        b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n"
    );
}

#[test]
fn blocking_moves_chain_and_time_out() {
    let server = EmberServer::start(&[]);
    let mut admin = server.connect();
    let mut mover = server.connect();
    let mut popper = server.connect();
    send(
        &mut mover,
        &[b"BLMOVE", b"src", b"mid", b"LEFT", b"RIGHT", b"0"],
    );
    await_blocked(&mut admin, 1);
    send(&mut popper, &[b"BLPOP", b"mid", b"0"]);
    await_blocked(&mut admin, 2);
    call(&mut admin, &[b"LPUSH", b"src", b"item"]);
    // The move feeds the second waiter, in the same step.
    assert_eq!(&read_reply(&mut mover)[..], b"$4\r\nitem\r\n");
    assert_eq!(
        &read_reply(&mut popper)[..],
        b"*2\r\n$3\r\nmid\r\n$4\r\nitem\r\n"
    );
    assert_eq!(
        &call(&mut admin, &[b"EXISTS", b"src", b"mid"])[..],
        b":0\r\n"
    );
    // Timeouts answer with the null array, fractional seconds allowed.
    assert_eq!(
        &call(&mut popper, &[b"BLPOP", b"nothing", b"0.05"])[..],
        b"*-1\r\n"
    );
    assert_eq!(
        &call(
            &mut popper,
            &[b"BLMOVE", b"nothing", b"x", b"LEFT", b"LEFT", b"0.05"]
        )[..],
        b"*-1\r\n"
    );
    // A client that leaves while blocked takes nothing with it.
    let mut gone = server.connect();
    send(&mut gone, &[b"BLPOP", b"later", b"0"]);
    await_blocked(&mut admin, 1);
    drop(gone);
    await_blocked(&mut admin, 0);
    call(&mut admin, &[b"RPUSH", b"later", b"kept"]);
    assert_eq!(
        &call(&mut admin, &[b"LRANGE", b"later", b"0", b"-1"])[..],
        b"*1\r\n$4\r\nkept\r\n"
    );
}

#[test]
fn info_counts_commands_and_errors() {
    let server = EmberServer::start(&[]);
    let mut c = server.connect();
    call(&mut c, &[b"SET", b"s", b"text"]);
    call(&mut c, &[b"GET"]);
    call(&mut c, &[b"INCR", b"s"]);
    call(&mut c, &[b"LPUSH", b"s", b"x"]);
    let info = String::from_utf8_lossy(&call(&mut c, &[b"INFO", b"commandstats", b"errorstats"]))
        .into_owned();
    assert!(info.contains("cmdstat_get:calls=0,"), "{info}");
    assert!(info.contains("rejected_calls=1,failed_calls=0"), "{info}");
    assert!(info.contains("cmdstat_incr:calls=1,"), "{info}");
    assert!(info.contains("errorstat_ERR:count=2"), "{info}");
    assert!(info.contains("errorstat_WRONGTYPE:count=1"), "{info}");
    // Neither section is in the default INFO.
    let default = String::from_utf8_lossy(&call(&mut c, &[b"INFO"])).into_owned();
    assert!(
        !default.contains("cmdstat_") && default.contains("# Keyspace"),
        "{default}"
    );
    call(&mut c, &[b"CONFIG", b"RESETSTAT"]);
    let info = String::from_utf8_lossy(&call(&mut c, &[b"INFO", b"errorstats"])).into_owned();
    assert!(!info.contains("errorstat_"), "{info}");
}

#[test]
fn client_unblock_as_timeout_or_error() {
    let server = EmberServer::start(&[]);
    let mut admin = server.connect();
    let mut blocked = server.connect();
    let id = String::from_utf8_lossy(&call(&mut blocked, &[b"CLIENT", b"ID"])[1..])
        .trim()
        .to_string();
    send(&mut blocked, &[b"BLPOP", b"nothing", b"0"]);
    await_blocked(&mut admin, 1);
    assert_eq!(
        &call(&mut admin, &[b"CLIENT", b"UNBLOCK", id.as_bytes()])[..],
        b":1\r\n"
    );
    assert_eq!(&read_reply(&mut blocked)[..], b"*-1\r\n");
    send(
        &mut blocked,
        &[b"BLMOVE", b"nothing", b"x", b"LEFT", b"LEFT", b"0"],
    );
    await_blocked(&mut admin, 1);
    assert_eq!(
        &call(
            &mut admin,
            &[b"CLIENT", b"UNBLOCK", id.as_bytes(), b"ERROR"]
        )[..],
        b":1\r\n"
    );
    assert_eq!(
        &read_reply(&mut blocked)[..],
        &b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"[..]
    );
    // Not blocked any more: nothing to do.
    assert_eq!(
        &call(&mut admin, &[b"CLIENT", b"UNBLOCK", id.as_bytes()])[..],
        b":0\r\n"
    );
}

#[test]
fn transactions_are_atomic() {
    let server = EmberServer::start(&[]);
    let mut reader = server.connect();
    // Both keys exist before the first check, so every MGET has two values.
    assert_eq!(
        &call(&mut reader, &[b"MSET", b"a", b"0", b"b", b"0"])[..],
        b"+OK\r\n"
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    // Two writers: each transaction adds one to both keys, so a reader that
    // sees them differ has seen half a transaction.
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let mut c = server.connect();
            let (stop, done) = (stop.clone(), done.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                let batch = b"MULTI\r\nINCR a\r\nINCR b\r\nEXEC\r\n";
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let reply = exchange(&mut c, batch, 1);
                    // +OK, two +QUEUED and the EXEC array; read it all.
                    let mut got = reply;
                    while got.iter().filter(|&&b| b == b'\n').count() < 6 {
                        let mut chunk = [0u8; 256];
                        let k = c.read(&mut chunk).unwrap();
                        assert!(k > 0);
                        got.extend_from_slice(&chunk[..k]);
                    }
                    assert!(got.starts_with(b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:"));
                    n += 1;
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                n
            })
        })
        .collect();
    // Checks while the writers run, until both have done as much as 1.5 s
    // gave on an idle machine, however long a busy one takes (30 s is the
    // bound on a hang).
    let started = Instant::now();
    let mut checks = 0;
    while checks < 5_000 || done.load(std::sync::atomic::Ordering::Relaxed) < 5_000 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "stalled: {checks} checks, {done:?} transactions"
        );
        if writers.iter().any(|w| w.is_finished()) {
            break; // failed: joining it below shows why
        }
        let reply = call(&mut reader, &[b"MGET", b"a", b"b"]);
        let text = String::from_utf8_lossy(&reply).into_owned();
        let values: Vec<&str> = text
            .split("\r\n")
            .filter(|l| !l.starts_with(['*', '$']))
            .collect();
        assert_eq!(values.len(), 3, "two values and the tail: {text:?}");
        assert_eq!(values[0], values[1], "saw half a transaction: {text:?}");
        checks += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let total: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(total >= 5_000, "{total} transactions");
    let a = call(&mut reader, &[b"GET", b"a"]);
    assert_eq!(a, call(&mut reader, &[b"GET", b"b"]));
    assert_eq!(
        a,
        format!("${}\r\n{total}\r\n", total.to_string().len()).as_bytes()
    );
}

#[test]
fn transactions_show_in_client_list_and_stats() {
    let server = EmberServer::start(&[]);
    let mut c = server.connect();
    let mut admin = server.connect();
    let id = String::from_utf8_lossy(&call(&mut c, &[b"CLIENT", b"ID"])[1..])
        .trim()
        .to_string();
    let line = |admin: &mut std::net::TcpStream| {
        String::from_utf8_lossy(&call(admin, &[b"CLIENT", b"LIST", b"ID", id.as_bytes()]))
            .into_owned()
    };
    assert!(
        line(&mut admin).contains(" flags=N "),
        "{}",
        line(&mut admin)
    );
    assert!(line(&mut admin).contains(" multi=-1 "));
    call(&mut c, &[b"WATCH", b"w"]);
    call(&mut admin, &[b"SET", b"w", b"1"]);
    call(&mut c, &[b"MULTI"]);
    call(&mut c, &[b"SET", b"a", b"1"]);
    call(&mut c, &[b"GET", b"a"]);
    // A touched watched key: queued commands are answered, not kept.
    let text = line(&mut admin);
    assert!(
        text.contains(" flags=xd ") && text.contains(" multi=0 "),
        "{text}"
    );
    assert_eq!(&call(&mut c, &[b"EXEC"])[..], b"*-1\r\n");
    call(&mut c, &[b"CONFIG", b"RESETSTAT"]);
    call(&mut c, &[b"MULTI"]);
    call(&mut c, &[b"SET", b"a", b"1"]);
    call(&mut c, &[b"AUTH", b"a"]);
    let text = line(&mut admin);
    assert!(
        text.contains(" flags=x ") && text.contains(" multi=2 "),
        "{text}"
    );
    assert!(text.contains(" cmd=auth "), "{text}");
    let reply = call(&mut c, &[b"EXEC"]);
    assert!(reply.starts_with(b"*2\r\n+OK\r\n-ERR AUTH"), "{reply:?}");
    assert_eq!(
        &call(&mut c, &[b"EXEC"])[..],
        b"-ERR EXEC without MULTI\r\n"
    );
    let info = String::from_utf8_lossy(&call(&mut c, &[b"INFO", b"commandstats"])).into_owned();
    // EXEC and the commands it ran are counted; errors go to whoever made
    // them, as in Redis.
    assert!(info.contains("cmdstat_set:calls=1,"), "{info}");
    let stat = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(&format!("cmdstat_{name}:")))
            .map(|l| {
                l.split_once("usec_per_call")
                    .map_or("", |(_, rest)| rest)
                    .to_string()
            })
            .unwrap_or_default()
    };
    assert!(info.contains("cmdstat_exec:calls=2,"), "{info}");
    assert!(
        stat("exec").ends_with("rejected_calls=0,failed_calls=1"),
        "{info}"
    );
    assert!(
        stat("auth").ends_with("rejected_calls=0,failed_calls=1"),
        "{info}"
    );
    assert!(
        stat("set").ends_with("rejected_calls=0,failed_calls=0"),
        "{info}"
    );
}

/// INFO's sections, in Redis's order, by default and with `all`; and the
/// `cluster` section that client libraries' harnesses read.
#[test]
fn info_sections_are_redis_s() {
    let redis = ember_tests::RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    let headers = |addr: std::net::SocketAddr, args: &[&[u8]]| {
        let mut c = connect(addr);
        let text = String::from_utf8_lossy(&call(&mut c, args)).into_owned();
        text.lines()
            .filter(|l| l.starts_with('#'))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    for args in [
        &[&b"INFO"[..]][..],
        &[b"INFO", b"all"],
        &[b"INFO", b"everything"],
    ] {
        let want = headers(redis.addr(), args);
        assert!(want.len() >= 11, "{want:?}");
        assert_eq!(headers(ember.addr(), args), want, "{args:?}");
    }
    let section = |addr, name: &[u8]| {
        let mut c = connect(addr);
        String::from_utf8_lossy(&call(&mut c, &[b"INFO", name])).into_owned()
    };
    assert_eq!(
        section(ember.addr(), b"cluster"),
        section(redis.addr(), b"cluster")
    );
    assert_eq!(
        section(ember.addr(), b"modules"),
        section(redis.addr(), b"modules")
    );
}

/// Every field Redis 7.0 prints in each section, in Redis's order (the
/// per-command lines aside, and Ember's own `ember_version`).
#[test]
fn info_fields_are_redis_s() {
    let redis = ember_tests::RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    let fields = |addr: std::net::SocketAddr| {
        let mut c = connect(addr);
        // Some traffic, so that every per-command section has lines.
        call(&mut c, &[b"SET", b"k", b"v"]);
        let text = String::from_utf8_lossy(&call(&mut c, &[b"INFO", b"everything"])).into_owned();
        text.lines()
            .filter_map(|l| l.split(':').next())
            .filter(|f| {
                !f.is_empty()
                    && !f.starts_with('$')
                    && *f != "ember_version"
                    && !["cmdstat_", "errorstat_", "latency_percentiles_usec_", "db"]
                        .iter()
                        .any(|p| f.starts_with(p))
            })
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let want = fields(redis.addr());
    assert!(want.len() > 180, "{want:?}");
    assert_eq!(fields(ember.addr()), want);
}

/// `latencystats`: one line per command called, with the configured
/// percentiles, as Redis prints them; the percentiles' parameter is checked
/// and shown as Redis shows it; `latency-tracking no` empties the section.
#[test]
fn latency_percentiles_per_command() {
    let redis = ember_tests::RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    for addr in [redis.addr(), ember.addr()] {
        let mut c = connect(addr);
        for _ in 0..10 {
            call(&mut c, &[b"SET", b"k", b"v"]);
        }
        let text = String::from_utf8_lossy(&call(&mut c, &[b"INFO", b"latencystats"])).into_owned();
        let line = text
            .lines()
            .find(|l| l.starts_with("latency_percentiles_usec_set:"))
            .unwrap_or_else(|| panic!("{addr}: {text}"));
        let values: Vec<(&str, f64)> = line
            .split(':')
            .nth(1)
            .unwrap()
            .split(',')
            .map(|f| {
                let (k, v) = f.split_once('=').unwrap();
                (k, v.parse::<f64>().unwrap())
            })
            .collect();
        let keys: Vec<&str> = values.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["p50", "p99", "p99.9"], "{addr}: {line}");
        assert!(
            values.windows(2).all(|w| w[0].1 <= w[1].1),
            "{addr}: {line}"
        );
        assert!(
            line.split(',')
                .all(|f| f.rsplit('.').next().unwrap().len() == 3),
            "{line}"
        );
        assert!(
            !text.contains("latency_percentiles_usec_get:"),
            "{addr}: {text}"
        );
    }
    let mut answers = Vec::new();
    for addr in [redis.addr(), ember.addr()] {
        let mut c = connect(addr);
        let mut a = Vec::new();
        for value in [&b"50.000 99 99.90 100"[..], b"101", b"x", b"", b"0 25.5"] {
            a.push(call(
                &mut c,
                &[
                    b"CONFIG",
                    b"SET",
                    b"latency-tracking-info-percentiles",
                    value,
                ],
            ));
            a.push(call(
                &mut c,
                &[b"CONFIG", b"GET", b"latency-tracking-info-percentiles"],
            ));
        }
        call(&mut c, &[b"GET", b"k"]);
        let text = call(&mut c, &[b"INFO", b"latencystats"]);
        let get = String::from_utf8_lossy(&text)
            .lines()
            .find(|l| l.starts_with("latency_percentiles_usec_get:"))
            .map(|l| {
                l.split(':')
                    .nth(1)
                    .unwrap()
                    .split(',')
                    .map(|f| f.split('=').next().unwrap().to_owned())
                    .collect::<Vec<_>>()
            });
        assert_eq!(
            get,
            Some(vec!["p0".to_owned(), "p25.5".to_owned()]),
            "{addr}"
        );
        a.push(call(
            &mut c,
            &[b"CONFIG", b"SET", b"latency-tracking", b"no"],
        ));
        let text = call(&mut c, &[b"INFO", b"latencystats"]);
        assert_eq!(
            String::from_utf8_lossy(&text)
                .lines()
                .filter(|l| !l.is_empty())
                .count(),
            2,
            "{addr}"
        );
        answers.push(a);
    }
    assert_eq!(answers[1], answers[0]);
}

/// HRANDFIELD and SRANDMEMBER refuse a count of picks with repeats past
/// 2^26, the same way, rather than building a reply of gigabytes; up to
/// it they answer as Redis does.
#[test]
fn random_picks_with_repeats_are_bounded_alike() {
    let ember = EmberServer::start(&[]);
    let mut c = connect(ember.addr());
    call(&mut c, &[b"HSET", b"h", b"f", b"v"]);
    call(&mut c, &[b"SADD", b"s", b"m"]);
    for (cmd, key) in [(&b"HRANDFIELD"[..], &b"h"[..]), (b"SRANDMEMBER", b"s")] {
        let over = call(&mut c, &[cmd, key, b"-67108865"]);
        assert_eq!(
            &over[..],
            b"-ERR value is out of range: at most 67108864 random picks at once\r\n"
        );
        let some = call(&mut c, &[cmd, key, b"-3"]);
        assert!(some.starts_with(b"*3\r\n"), "{some:?}");
    }
}

//! Saving by itself: save points start a BGSAVE once reached, a failed
//! BGSAVE refuses writes with Redis's `-MISCONF` (and the same bytes as a
//! real `redis-server` for the same steps) until a save succeeds,
//! FLUSHALL saves the empty dataset when save points are set, and `save`
//! is parsed as Redis parses it. The binary's shutdown saves (SIGTERM,
//! SHUTDOWN) are in `crates/server/tests/binary.rs`; the AOF's kill -9
//! tests in `aof.rs`.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use ember_tests::{EmberServer, RedisServer, TempDir, call};

/// INFO persistence's `field`.
fn info_field(s: &mut TcpStream, field: &str) -> String {
    let reply = call(s, &[b"INFO", b"persistence"]);
    let text = String::from_utf8_lossy(&reply).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {text}"))
        .to_string()
}

/// Waits (bounded) until INFO persistence's `field` is `want`.
fn wait_field(s: &mut TcpStream, field: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = info_field(s, field);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{field} stayed {got}, never {want}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_save_point_reached_starts_a_bgsave() {
    let dir = TempDir::new("savepoint");
    let ember = EmberServer::start(&[&format!("dir {}", dir.str()), "save 1 3"]);
    let mut c = ember.connect();
    assert_eq!(&call(&mut c, &[b"SET", b"a", b"1"])[..], b"+OK\r\n");
    // Two changes: not enough for the point, however long it waits; the
    // third (an RPUSH of two elements counts two) reaches it.
    assert_eq!(info_field(&mut c, "rdb_changes_since_last_save"), "1");
    assert_eq!(&call(&mut c, &[b"RPUSH", b"l", b"x", b"y"])[..], b":2\r\n");
    assert_eq!(info_field(&mut c, "rdb_changes_since_last_save"), "3");
    wait_field(&mut c, "rdb_changes_since_last_save", "0");
    wait_field(&mut c, "rdb_bgsave_in_progress", "0");
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
    assert!(dir.path().join("dump.rdb").exists());
    drop(ember);
    // What it saved comes back.
    let ember = EmberServer::start(&[&format!("dir {}", dir.str())]);
    let mut c = ember.connect();
    assert_eq!(&call(&mut c, &[b"LLEN", b"l"])[..], b":2\r\n");
}

/// The same steps against Ember and Redis, compared byte for byte: a
/// BGSAVE that cannot rename its file (`dbfilename` names a directory)
/// makes writes, EXEC of a write and PING fail with `-MISCONF`, reads
/// still work, `stop-writes-on-bgsave-error no` lifts it, and a
/// successful save ends it.
#[test]
fn a_failed_bgsave_refuses_writes_until_a_save_succeeds() {
    let dir = TempDir::new("misconf");
    std::fs::create_dir(dir.path().join("blocked")).expect("a directory");
    let ember = EmberServer::start(&[&format!("dir {}", dir.str()), "save 3600 1"]);
    // `dir` and `dbfilename` are protected settings in Redis 7.0.
    let redis = RedisServer::start(&["--enable-protected-configs", "yes", "--dir", dir.str()]);
    let mut e = ember.connect();
    let mut r = redis.connect();
    for c in [&mut e, &mut r] {
        for args in [
            &[&b"CONFIG"[..], b"SET", b"save", b"3600 1"][..],
            &[b"CONFIG", b"SET", b"dbfilename", b"blocked"],
            &[b"SET", b"k", b"v"],
        ] {
            assert_eq!(&call(c, args)[..], b"+OK\r\n", "{args:?}");
        }
        assert_eq!(
            &call(c, &[b"BGSAVE"])[..],
            b"+Background saving started\r\n"
        );
        wait_field(c, "rdb_bgsave_in_progress", "0");
        wait_field(c, "rdb_last_bgsave_status", "err");
    }
    let steps: &[&[&[u8]]] = &[
        &[b"SET", b"k", b"w"],
        &[b"PING"],
        &[b"GET", b"k"],
        &[b"INCR", b"n"],
        &[b"MULTI"],
        &[b"SET", b"k", b"x"],
        &[b"EXEC"],
        &[b"MULTI"],
        &[b"GET", b"k"],
        &[b"EXEC"],
        &[b"CONFIG", b"SET", b"stop-writes-on-bgsave-error", b"no"],
        &[b"SET", b"k", b"y"],
        &[b"CONFIG", b"SET", b"stop-writes-on-bgsave-error", b"yes"],
        &[b"SET", b"k", b"z"],
        &[b"CONFIG", b"SET", b"save", b""],
        &[b"SET", b"k", b"z"],
        &[b"CONFIG", b"SET", b"save", b"3600 1"],
        &[b"DEL", b"k"],
        &[b"CONFIG", b"SET", b"dbfilename", b"dump.rdb"],
        &[b"SAVE"],
        &[b"SET", b"k", b"saved"],
        &[b"GET", b"k"],
    ];
    for args in steps {
        let want = call(&mut r, args);
        let got = call(&mut e, args);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "{:?}",
            args.iter()
                .map(|a| String::from_utf8_lossy(a))
                .collect::<Vec<_>>()
        );
    }
    assert_eq!(info_field(&mut e, "rdb_last_bgsave_status"), "ok");
}

/// `save` as Redis parses it: pairs, seconds at least 1, changes at least
/// 0, `""` for none, canonical on CONFIG GET.
#[test]
fn save_is_parsed_as_redis_parses_it() {
    let ember = EmberServer::start(&[]);
    let redis = RedisServer::start(&[]);
    let mut e = ember.connect();
    let mut r = redis.connect();
    for value in [
        &b"100 10 20 0"[..],
        b"060 01",
        b"1",
        b"0 1",
        b"1 -1",
        b"x 1",
        b"",
        b"3600 1 300 100 60 10000",
    ] {
        for args in [
            &[&b"CONFIG"[..], b"SET", b"save", value][..],
            &[b"CONFIG", b"GET", b"save"],
        ] {
            assert_eq!(
                String::from_utf8_lossy(&call(&mut e, args)),
                String::from_utf8_lossy(&call(&mut r, args)),
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }
}

/// Config-file `save` lines add up, the first replacing the default.
#[test]
fn save_lines_in_a_file_add_up() {
    let dir = TempDir::new("savelines");
    let ember = EmberServer::start(&[&format!("dir {}", dir.str()), "save 900 1", "save 300 10"]);
    let mut e = ember.connect();
    assert_eq!(
        &call(&mut e, &[b"CONFIG", b"GET", b"save"])[..],
        b"*2\r\n$4\r\nsave\r\n$12\r\n900 1 300 10\r\n"
    );
}

/// FLUSHALL with save points set saves the empty dataset at once, as
/// Redis does, and leaves one change counted.
#[test]
fn flushall_saves_when_save_points_are_set() {
    let dir = TempDir::new("flushall");
    let ember = EmberServer::start(&[&format!("dir {}", dir.str()), "save 3600 1"]);
    let mut c = ember.connect();
    assert_eq!(&call(&mut c, &[b"SET", b"a", b"1"])[..], b"+OK\r\n");
    assert_eq!(&call(&mut c, &[b"SAVE"])[..], b"+OK\r\n");
    assert_eq!(&call(&mut c, &[b"SET", b"b", b"2"])[..], b"+OK\r\n");
    assert_eq!(&call(&mut c, &[b"FLUSHALL"])[..], b"+OK\r\n");
    assert_eq!(info_field(&mut c, "rdb_changes_since_last_save"), "1");
    drop(ember);
    let ember = EmberServer::start(&[&format!("dir {}", dir.str())]);
    let mut c = ember.connect();
    assert_eq!(&call(&mut c, &[b"DBSIZE"])[..], b":0\r\n");
}

/// A BGSAVE under concurrent writes is one instant. Writers keep pairs
/// with an invariant that any single instant satisfies but a walk that
/// read different shards at different times would break: each writer
/// increments `a:N`, then `b:N`, one command at a time (no MULTI), so at
/// every instant `b <= a <= b + 1`. The save is slowed down
/// (`rdb-key-save-delay`) so that it spans thousands of writes, and the
/// file, loaded into a fresh server, must satisfy the invariant for every
/// pair.
#[test]
fn a_bgsave_under_writes_is_one_instant() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let dir = TempDir::new("instant");
    let ember = EmberServer::start(&[&format!("dir {}", dir.str())]);
    let mut c = ember.connect();
    // Filler keys, so the walk has work in every shard.
    for chunk in 0..20 {
        let mut args: Vec<Vec<u8>> = vec![b"MSET".to_vec()];
        for i in 0..1000 {
            args.push(format!("filler:{chunk}:{i}").into_bytes());
            args.push(b"x".to_vec());
        }
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        assert_eq!(&call(&mut c, &refs)[..], b"+OK\r\n");
    }
    let (writers, pairs) = (4, 50);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let (stop, done) = (stop.clone(), done.clone());
            let mut s = ember.connect();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for p in 0..pairs {
                        for side in ["a", "b"] {
                            let key = format!("{side}:{w}:{p}");
                            let reply = call(&mut s, &[b"INCR", key.as_bytes()]);
                            assert_eq!(reply[0], b':', "{reply:?}");
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let wait_done = |at_least: u64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while done.load(Ordering::Relaxed) < at_least {
            assert!(Instant::now() < deadline, "the writers made no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_done(500);
    // About 20 keys a shard at 50 µs each: a walk of about a second.
    assert_eq!(
        &call(&mut c, &[b"CONFIG", b"SET", b"rdb-key-save-delay", b"50"])[..],
        b"+OK\r\n"
    );
    let before = done.load(Ordering::Relaxed);
    assert_eq!(
        &call(&mut c, &[b"BGSAVE"])[..],
        b"+Background saving started\r\n"
    );
    // One snapshot at a time; a foreground SAVE is refused meanwhile.
    assert_eq!(
        &call(&mut c, &[b"SAVE"])[..],
        b"-ERR Background save already in progress\r\n"
    );
    wait_field(&mut c, "rdb_bgsave_in_progress", "0");
    let during = done.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("writer");
    }
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
    // The test means something only if writes ran during the save.
    assert!(during > 100, "only {during} pairs written during the save");
    drop(ember);
    let copy = TempDir::new("instant-load");
    std::fs::copy(dir.path().join("dump.rdb"), copy.path().join("dump.rdb")).expect("copy");
    let loaded = EmberServer::start(&[&format!("dir {}", copy.str())]);
    let mut l = loaded.connect();
    let number = |reply: &[u8]| -> i64 {
        let text = String::from_utf8_lossy(reply);
        text.lines()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let mut nonzero = 0;
    for w in 0..writers {
        for p in 0..pairs {
            let a = number(&call(&mut l, &[b"GET", format!("a:{w}:{p}").as_bytes()]));
            let b = number(&call(&mut l, &[b"GET", format!("b:{w}:{p}").as_bytes()]));
            assert!(
                b <= a && a <= b + 1,
                "pair {w}:{p} is a={a} b={b}: not one instant"
            );
            nonzero += usize::from(a > 0);
        }
    }
    assert!(nonzero > 0);
}

/// While another snapshot runs (an AOF rewrite here), BGSAVE is refused
/// with Redis's words, and BGSAVE SCHEDULE runs once it is done.
#[test]
fn bgsave_schedule_waits_for_a_rewrite() {
    let dir = TempDir::new("schedule");
    let ember = EmberServer::start(&[&format!("dir {}", dir.str())]);
    let mut c = ember.connect();
    for i in 0..200 {
        let key = format!("k{i}");
        assert_eq!(
            &call(&mut c, &[b"SET", key.as_bytes(), b"v"])[..],
            b"+OK\r\n"
        );
    }
    // A slow rewrite: 200 keys at 10 ms.
    assert_eq!(
        &call(
            &mut c,
            &[b"CONFIG", b"SET", b"rdb-key-save-delay", b"10000"]
        )[..],
        b"+OK\r\n"
    );
    assert_eq!(
        &call(&mut c, &[b"BGREWRITEAOF"])[..],
        b"+Background append only file rewriting started\r\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&call(&mut c, &[b"BGSAVE"])),
        "-ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.\r\n"
    );
    assert_eq!(
        &call(&mut c, &[b"BGSAVE", b"SCHEDULE"])[..],
        b"+Background saving scheduled\r\n"
    );
    assert_eq!(info_field(&mut c, "rdb_saves"), "0");
    assert_eq!(
        &call(&mut c, &[b"CONFIG", b"SET", b"rdb-key-save-delay", b"0"])[..],
        b"+OK\r\n"
    );
    wait_field(&mut c, "aof_rewrite_in_progress", "0");
    wait_field(&mut c, "rdb_saves", "1");
    wait_field(&mut c, "rdb_bgsave_in_progress", "0");
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
    assert!(dir.path().join("dump.rdb").exists());
}

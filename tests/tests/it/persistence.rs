//! Saving by itself: save points start a BGSAVE once reached, a failed
//! BGSAVE refuses writes with Redis's `-MISCONF` (and the same bytes as a
//! real `redis-server` for the same steps) until a save succeeds,
//! FLUSHALL saves the empty dataset when save points are set, and `save`
//! is parsed as Redis parses it. The binary's shutdown saves (SIGTERM,
//! SHUTDOWN) are in `crates/server/tests/binary.rs`; the AOF's kill -9
//! tests in `aof.rs`.

use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    let threads = pair_writers(&ember, writers, pairs, &stop, &done);
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

/// The writes of phase 1 (before the snapshot's instant): `n` keys of
/// every type in database 0, some with a deadline, and keys in databases
/// 2 to 4 for FLUSHDB and SWAPDB.
fn phase_one(con: &mut redis::Connection, n: usize) {
    use crate::redis_crate::q;
    let far = 4_000_000_000_000i64;
    for i in 0..n {
        let (s, v) = (format!("s{i}"), format!("v{i}"));
        let _: () = q(con, &["SET", &s, &v]);
        if i % 3 == 0 {
            let _: i64 = q(con, &["PEXPIREAT", &s, &(far + i as i64).to_string()]);
        }
        let _: () = q(con, &["SET", &format!("n{i}"), &i.to_string()]);
        let _: i64 = q(con, &["RPUSH", &format!("l{i}"), "a", "b", "c", "d"]);
        let _: i64 = q(
            con,
            &["HSET", &format!("h{i}"), "f1", "1", "f2", "2", "f3", "x"],
        );
        let _: i64 = q(con, &["SADD", &format!("t{i}"), "1", "2", "3", "m", "n"]);
        let _: i64 = q(
            con,
            &["ZADD", &format!("z{i}"), "1", "a", "2", "b", "3", "c"],
        );
        let _: i64 = q(con, &["SETBIT", &format!("b{i}"), "7", "1"]);
    }
    for db in 2..=4 {
        let _: () = q(con, &["SELECT", &db.to_string()]);
        for i in 0..n / 4 {
            let _: () = q(con, &["SET", &format!("d{db}:{i}"), &format!("{db}")]);
        }
    }
    let _: () = q(con, &["SELECT", "0"]);
}

/// The writes of phase 2 (after the instant, while the walk runs): every
/// command family on the keys of phase 1, and each way a key goes or
/// moves (DEL, UNLINK, EXPIRE, RENAME, MOVE, a deadline reached),
/// scripts, transactions, FLUSHDB and SWAPDB. Returns how many ran.
fn phase_two(con: &mut redis::Connection, n: usize) -> usize {
    fn run(con: &mut redis::Connection, ran: &mut usize, args: Vec<String>) {
        let mut cmd = redis::cmd(&args[0]);
        for a in &args[1..] {
            cmd.arg(a);
        }
        // Replies do not matter (a WRONGTYPE or two is fine): only that
        // the snapshot does not see the change.
        let _: redis::RedisResult<redis::Value> = cmd.query(con);
        *ran += 1;
    }
    let mut ran = 0;
    let w = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
    for i in 0..n {
        let j = (i + 1) % n;
        let batch: Vec<String> = match i % 24 {
            0 => vec![format!("SET s{i} new"), format!("INCR n{i}")],
            1 => vec![format!("APPEND s{i} x"), format!("INCRBY n{i} 5")],
            2 => vec![format!("SETRANGE s{i} 0 zz"), format!("SETBIT b{i} 3 1")],
            3 => vec![format!("GETDEL s{i}"), format!("MSET n{i} 7 s{j} m")],
            4 => vec![
                format!("GETEX s{i} PERSIST"),
                format!("BITOP OR b{i} b{i} b{j}"),
            ],
            5 => vec![format!("LPOP l{i}"), format!("RPUSH l{i} e")],
            6 => vec![format!("LSET l{i} 0 q"), format!("LTRIM l{i} 1 2")],
            7 => vec![format!("LINSERT l{i} BEFORE b x"), format!("LREM l{i} 0 c")],
            8 => vec![
                format!("LMOVE l{i} l{j} LEFT RIGHT"),
                format!("BLPOP l{i} 1"),
            ],
            9 => vec![format!("HSET h{i} f4 4"), format!("HDEL h{i} f1")],
            10 => vec![format!("HINCRBY h{i} f2 3"), format!("HSETNX h{i} f9 9")],
            11 => vec![
                format!("SADD t{i} z"),
                format!("SREM t{i} 1"),
                format!("SPOP t{j}"),
            ],
            12 => vec![
                format!("SMOVE t{i} t{j} m"),
                format!("SINTERSTORE t{i} t{i} t{j}"),
            ],
            13 => vec![
                format!("ZADD z{i} 5 d"),
                format!("ZINCRBY z{i} 2 a"),
                format!("ZREM z{i} b"),
            ],
            14 => vec![
                format!("ZPOPMIN z{i}"),
                format!("ZUNIONSTORE z{i} 2 z{i} z{j}"),
            ],
            15 => vec![format!("DEL s{i} h{i}"), format!("UNLINK l{i} z{i}")],
            16 => vec![
                format!("EXPIRE h{i} 1000"),
                format!("PERSIST s{i}"),
                format!("PEXPIREAT z{i} 4100000000000"),
            ],
            17 => vec![format!("RENAME t{i} tr{i}"), format!("RENAMENX l{i} lr{i}")],
            18 => vec![format!("MOVE s{i} 5"), format!("COPY h{i} hc{i}")],
            19 => vec![
                format!("SORT l{i} ALPHA STORE l{i}"),
                format!("SUNIONSTORE t{i} t{j}"),
            ],
            // A deadline reached: the next access deletes the key.
            20 => vec![format!("PEXPIRE s{i} 1"), format!("PEXPIRE h{i} 1")],
            21 => vec![format!("GET s{}", i - 1), format!("HGETALL h{}", i - 1)],
            _ => vec![format!("SET s{i} x"), format!("ZADD z{i} 9 zz")],
        };
        for c in batch {
            run(con, &mut ran, w(&c));
        }
        match i % 24 {
            22 => {
                let script =
                    "redis.call('SET', KEYS[1], 'lua'); redis.call('RPUSH', KEYS[2], 'lua')";
                let args = vec![
                    "EVAL".to_string(),
                    script.to_string(),
                    "2".to_string(),
                    format!("s{i}"),
                    format!("l{i}"),
                ];
                run(con, &mut ran, args);
                // A script that reaches a key it did not declare.
                let reach =
                    format!("redis.call('SET', 'n{i}', 'reached'); redis.call('DEL', 'z{i}')");
                let args = vec!["EVAL".to_string(), reach, "0".to_string()];
                run(con, &mut ran, args);
            }
            23 => {
                let mut tx = redis::pipe();
                tx.atomic()
                    .cmd("INCR")
                    .arg(format!("n{i}"))
                    .cmd("HSET")
                    .arg(format!("h{i}"))
                    .arg("tx")
                    .arg("1")
                    .cmd("DEL")
                    .arg(format!("t{i}"));
                let _: redis::RedisResult<redis::Value> = tx.query(con);
                ran += 1;
            }
            _ => {}
        }
        if i == n / 2 {
            for c in [
                "SELECT 2",
                "FLUSHDB",
                "SELECT 0",
                "SWAPDB 3 4",
                "SELECT 4",
                "SET d4:new x",
                "SELECT 0",
            ] {
                run(con, &mut ran, w(c));
            }
        }
    }
    ran
}

/// A BGSAVE taken while writes of every command family run is the
/// keyspace of its instant, key for key: one connection writes phase 1,
/// asks for the BGSAVE (its instant comes between the two phases, as
/// commands of one connection run in order) and, while the slowed walk
/// runs, phase 2, which changes, deletes, moves and re-creates keys of
/// every type. The file, loaded into a fresh server, must equal a shadow
/// server that ran phase 1 only. A write path that changed a key without
/// keeping its old value first (see ember-store's `keyspace/snapshot.rs`)
/// shows here as a key with a phase-2 value.
#[test]
fn a_bgsave_sees_every_write_family_as_of_its_instant() {
    use crate::redis_crate::{connect, q};

    let n = 240;
    let dir = TempDir::new("families");
    let ember = EmberServer::start(&[&format!("dir {}", dir.str()), "save \"\""]);
    let shadow = EmberServer::start(&["save \"\""]);
    let mut con = connect(ember.addr());
    let mut s = connect(shadow.addr());
    phase_one(&mut con, n);
    phase_one(&mut s, n);
    // About 1,900 keys at 2 ms each: a walk of several seconds, far
    // longer than phase 2 takes.
    let _: () = q(&mut con, &["CONFIG", "SET", "rdb-key-save-delay", "2000"]);
    let started: String = q(&mut con, &["BGSAVE"]);
    assert_eq!(started, "Background saving started");
    let ran = phase_two(&mut con, n);
    let mut c = ember.connect();
    // Every phase-2 write ran while the walk did, or the test proves
    // nothing.
    assert_eq!(
        info_field(&mut c, "rdb_bgsave_in_progress"),
        "1",
        "the save ended before the {ran} writes did"
    );
    let _: () = q(&mut con, &["CONFIG", "SET", "rdb-key-save-delay", "0"]);
    wait_field(&mut c, "rdb_bgsave_in_progress", "0");
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
    drop(ember);
    let copy = TempDir::new("families-load");
    std::fs::copy(dir.path().join("dump.rdb"), copy.path().join("dump.rdb")).expect("copy");
    let loaded = EmberServer::start(&[&format!("dir {}", copy.str()), "save \"\""]);
    let mut l = connect(loaded.addr());
    let (got, want) = (crate::aof::dump(&mut l), crate::aof::dump(&mut s));
    let differ: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}: want {v}, got {:?}", got.get(k)))
        .chain(
            got.keys()
                .filter(|k| !want.contains_key(*k))
                .map(|k| format!("{k}: not at the instant, got {}", got[k])),
        )
        .take(10)
        .collect();
    assert!(
        differ.is_empty(),
        "the snapshot is not its instant ({} keys against {}): {differ:#?}",
        got.len(),
        want.len()
    );
    assert!(want.len() > 7 * n, "{} keys", want.len());
}

/// Shards bigger than the walker's slice (300,000 keys: about 290 a
/// shard, walked in two holds of its lock each), saved while writers
/// change pairs of keys one command at a time (`b <= a <= b + 1` at every
/// instant) and add new keys in numbered batches of 200 (so tables grow
/// during the walk): the file holds every filler key as it was, every
/// pair as it stood at one instant, and the batches up to one, each whole,
/// none after.
#[test]
fn a_bgsave_of_shards_bigger_than_a_slice_is_one_instant() {
    use std::collections::BTreeMap;

    use crate::redis_crate::{connect, q};

    let dir = TempDir::new("slices");
    let ember = EmberServer::start(&[&format!("dir {}", dir.str()), "save \"\""]);
    let mut c = ember.connect();
    let fillers = 300_000;
    let mset = |s: &mut TcpStream, pairs: &mut dyn Iterator<Item = (String, String)>| {
        let mut args: Vec<Vec<u8>> = vec![b"MSET".to_vec()];
        for (k, v) in pairs {
            args.push(k.into_bytes());
            args.push(v.into_bytes());
        }
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        assert_eq!(&call(s, &refs)[..], b"+OK\r\n");
    };
    for chunk in 0..fillers / 1000 {
        mset(
            &mut c,
            &mut (0..1000).map(|i| (format!("filler:{chunk}:{i}"), format!("f{i}"))),
        );
    }
    let (writers, pairs) = (2, 50);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let batches = Arc::new(AtomicU64::new(0));
    let mut threads = pair_writers(&ember, writers, pairs, &stop, &done);
    threads.push({
        let (stop, batches) = (stop.clone(), batches.clone());
        let mut s = ember.connect();
        std::thread::spawn(move || {
            // Bounded: 1,500 batches are 300,000 keys.
            for b in 0..1500 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                mset(
                    &mut s,
                    &mut (0..200).map(|i| (format!("new:{b}:{i}"), b.to_string())),
                );
                batches.fetch_add(1, Ordering::Relaxed);
            }
        })
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while done.load(Ordering::Relaxed) < 200 || batches.load(Ordering::Relaxed) < 2 {
        assert!(Instant::now() < deadline, "the writers made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    // About 290 keys a shard at 3 µs each: a walk of about a second.
    assert_eq!(
        &call(&mut c, &[b"CONFIG", b"SET", b"rdb-key-save-delay", b"3"])[..],
        b"+OK\r\n"
    );
    let (before, batches_before) = (
        done.load(Ordering::Relaxed),
        batches.load(Ordering::Relaxed),
    );
    assert_eq!(
        &call(&mut c, &[b"BGSAVE"])[..],
        b"+Background saving started\r\n"
    );
    wait_field(&mut c, "rdb_bgsave_in_progress", "0");
    let during = done.load(Ordering::Relaxed) - before;
    let batches_during = batches.load(Ordering::Relaxed) - batches_before;
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("writer");
    }
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
    // The test means something only if writes ran during the save.
    assert!(during > 50, "only {during} pairs written during the save");
    assert!(
        batches_during > 2,
        "only {batches_during} batches during the save"
    );
    drop(ember);
    let copy = TempDir::new("slices-load");
    std::fs::copy(dir.path().join("dump.rdb"), copy.path().join("dump.rdb")).expect("copy");
    let loaded = EmberServer::start(&[&format!("dir {}", copy.str()), "save \"\""]);
    let mut l = connect(loaded.addr());
    let keys: Vec<String> = q(&mut l, &["KEYS", "filler:*"]);
    assert_eq!(keys.len(), fillers, "filler keys");
    for chunk in 0..fillers / 1000 {
        let mut args = vec!["MGET".to_string()];
        args.extend((0..1000).map(|i| format!("filler:{chunk}:{i}")));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let got: Vec<Option<String>> = q(&mut l, &refs);
        for (i, v) in got.iter().enumerate() {
            assert_eq!(
                v.as_deref(),
                Some(format!("f{i}").as_str()),
                "filler:{chunk}:{i}"
            );
        }
    }
    let mut per_batch: BTreeMap<u64, usize> = BTreeMap::new();
    let new: Vec<String> = q(&mut l, &["KEYS", "new:*"]);
    for k in &new {
        let b = k
            .split(':')
            .nth(1)
            .and_then(|b| b.parse().ok())
            .expect("a batch");
        *per_batch.entry(b).or_default() += 1;
    }
    let saved = per_batch.len() as u64;
    assert!(
        saved >= batches_before,
        "{saved} batches, {batches_before} before the save"
    );
    assert!(
        per_batch.keys().copied().eq(0..saved) && per_batch.values().all(|&n| n == 200),
        "the batches are not one instant's: {:?}",
        per_batch
            .iter()
            .filter(|(_, n)| **n != 200)
            .take(5)
            .collect::<Vec<_>>()
    );
    let number = |v: Option<String>| v.and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    for w in 0..writers {
        for p in 0..pairs {
            let a = number(q(&mut l, &["GET", &format!("a:{w}:{p}")]));
            let b = number(q(&mut l, &["GET", &format!("b:{w}:{p}")]));
            assert!(
                b <= a && a <= b + 1,
                "pair {w}:{p} is a={a} b={b}: not one instant"
            );
        }
    }
}

/// `writers` threads, each INCRementing `a:W:P` then `b:W:P` for `P` in
/// `0..pairs`, over and over until `stop`, counting each pair done in
/// `done`: a snapshot taken meanwhile must show every pair equal (both
/// keys of a pair change under one connection, one after the other).
fn pair_writers(
    ember: &EmberServer,
    writers: usize,
    pairs: usize,
    stop: &Arc<AtomicBool>,
    done: &Arc<AtomicU64>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..writers)
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
        .collect()
}

//! The append-only file, between Ember and a real `redis-server` 7.0:
//! Ember's directory survives a SIGKILL and loads into Redis (and passes
//! `redis-check-aof`), Redis's loads into Ember, with and without the RDB
//! preamble, before and after a rewrite; `appendfsync always` loses no
//! acknowledged write; a torn last record is kept or refused as
//! `aof-load-truncated` says.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ember_tests::{EmberServer, NodeKind, NodeProcess, RedisServer, TempDir};
use redis::Connection;

use crate::redis_crate::{connect, q};

/// Writes a bit of everything: every type, several databases, deadlines,
/// a transaction, a script, keys changed and deleted, an expired key.
fn write_dataset(con: &mut Connection) {
    let _: () = q(con, &["SET", "s", "hello"]);
    let _: () = q(con, &["SET", "n", "10"]);
    let _: i64 = q(con, &["INCRBY", "n", "5"]);
    let _: () = q(con, &["SET", "ttl", "v", "EX", "1000"]);
    let _: () = q(con, &["SET", "gone", "v", "PX", "1"]);
    let _: i64 = q(con, &["RPUSH", "l", "a", "b", "c", "d"]);
    let _: Option<String> = q(con, &["LPOP", "l"]);
    let _: i64 = q(con, &["LPUSH", "l", "z"]);
    let _: i64 = q(con, &["HSET", "h", "f1", "v1", "f2", "v2"]);
    let _: i64 = q(con, &["HDEL", "h", "f1"]);
    let _: i64 = q(con, &["SADD", "set", "x", "y", "z", "1"]);
    let _: i64 = q(con, &["SADD", "ints", "1", "2", "3"]);
    let _: Option<String> = q(con, &["SPOP", "ints"]);
    let _: i64 = q(con, &["ZADD", "z", "1.5", "a", "2", "b", "-3", "c"]);
    let _: f64 = q(con, &["ZINCRBY", "z", "0.1", "a"]);
    let _: () = q(con, &["SET", "del-me", "1"]);
    let _: i64 = q(con, &["DEL", "del-me"]);
    let _: i64 = q(con, &["EXPIRE", "h", "5000"]);
    // A transaction, whole.
    let _: () = q(con, &["MULTI"]);
    let _: String = q(con, &["SET", "t1", "a"]);
    let _: String = q(con, &["INCR", "t2"]);
    let _: String = q(con, &["RPUSH", "tl", "x"]);
    let _: Vec<redis::Value> = q(con, &["EXEC"]);
    // A script.
    let _: i64 = q(
        con,
        &[
            "EVAL",
            "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[2])",
            "2",
            "script-s",
            "script-n",
            "7",
        ],
    );
    // Another database.
    let _: () = q(con, &["SELECT", "3"]);
    let _: () = q(con, &["SET", "db3", "three"]);
    let _: i64 = q(con, &["RPUSH", "db3-list", "1", "2"]);
    let _: () = q(con, &["SELECT", "0"]);
    let _: () = q(con, &["SET", "after-select", "back"]);
    // Let the 1 ms key expire before anyone reads it.
    std::thread::sleep(Duration::from_millis(5));
}

/// Every key of every database with its type, value and deadline, as
/// text, for comparison.
pub(crate) fn dump(con: &mut Connection) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for db in 0..16 {
        let _: () = q(con, &["SELECT", &db.to_string()]);
        let mut keys: Vec<Vec<u8>> = q(con, &["KEYS", "*"]);
        keys.sort();
        for key in keys {
            let k = String::from_utf8_lossy(&key).into_owned();
            let ty: String = redis::cmd("TYPE").arg(&key).query(con).expect("TYPE");
            let value = match ty.as_str() {
                "string" => {
                    let v: Vec<u8> = redis::cmd("GET").arg(&key).query(con).expect("GET");
                    format!("{v:?}")
                }
                "list" => {
                    let v: Vec<Vec<u8>> = redis::cmd("LRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .query(con)
                        .expect("LRANGE");
                    format!("{v:?}")
                }
                "set" => {
                    let mut v: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
                        .arg(&key)
                        .query(con)
                        .expect("SMEMBERS");
                    v.sort();
                    format!("{v:?}")
                }
                "hash" => {
                    let v: BTreeMap<Vec<u8>, Vec<u8>> =
                        redis::cmd("HGETALL").arg(&key).query(con).expect("HGETALL");
                    format!("{v:?}")
                }
                "zset" => {
                    let v: Vec<Vec<u8>> = redis::cmd("ZRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .arg("WITHSCORES")
                        .query(con)
                        .expect("ZRANGE");
                    format!("{v:?}")
                }
                other => panic!("unexpected type {other} for {k}"),
            };
            let at: i64 = redis::cmd("PEXPIRETIME")
                .arg(&key)
                .query(con)
                .expect("PEXPIRETIME");
            out.insert(format!("{db}:{k}"), format!("{ty} {value} at {at}"));
        }
    }
    let _: () = q(con, &["SELECT", "0"]);
    out
}

/// DEBUG DIGEST, once the expired key is deleted (both servers count a
/// key past its deadline until something deletes it).
fn digest(con: &mut Connection) -> String {
    let _: i64 = q(con, &["EXISTS", "gone"]);
    q(con, &["DEBUG", "DIGEST"])
}

/// The data the dataset must leave, checked by hand once so that a
/// comparison of two empty dumps cannot pass.
fn assert_plausible(d: &BTreeMap<String, String>) {
    assert_eq!(
        d.get("0:n").map(String::as_str),
        Some("string [49, 53] at -1")
    );
    assert_eq!(
        d.get("0:l").map(String::as_str),
        Some("list [[122], [98], [99], [100]] at -1")
    );
    assert!(d.contains_key("0:t1") && d.contains_key("0:tl"), "{d:?}");
    assert!(
        d.contains_key("0:script-s") && d.contains_key("3:db3"),
        "{d:?}"
    );
    assert!(
        !d.contains_key("0:gone") && !d.contains_key("0:del-me"),
        "{d:?}"
    );
    assert!(d["0:h"].starts_with("hash") && !d["0:h"].ends_with("at -1"));
    assert_eq!(d.len(), 16, "{d:?}");
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `redis-check-aof` on a manifest: `None` if it is not installed.
fn check_aof(manifest: &Path) {
    let Ok(out) = Command::new("redis-check-aof").arg(manifest).output() else {
        eprintln!("redis-check-aof is not installed: skipped");
        return;
    };
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("All AOF files and manifest are valid"),
        "redis-check-aof refused Ember's files:\n{text}"
    );
}

/// Waits until INFO persistence shows no rewrite running.
fn wait_rewrite(con: &mut Connection) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info: String = q(con, &["INFO", "persistence"]);
        if info.contains("aof_rewrite_in_progress:0") && !info.contains("aof_rewrite_scheduled:1") {
            assert!(info.contains("aof_last_bgrewrite_status:ok"), "{info}");
            return;
        }
        assert!(Instant::now() < deadline, "the rewrite never ended: {info}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// BGREWRITEAOF, then writes that go to the new incremental file.
fn rewrite_then_write(con: &mut Connection) {
    let _: String = q(con, &["BGREWRITEAOF"]);
    wait_rewrite(con);
    let _: () = q(con, &["SET", "after-rewrite", "1"]);
    let _: i64 = q(con, &["DEL", "after-rewrite"]);
}

/// Ember's directory, after a SIGKILL: Ember restarted on it has the same
/// data, `redis-check-aof` accepts it, and Redis started on it has the
/// same data too. With the RDB preamble and without, before a rewrite
/// (only the empty base and the incremental file) and after one.
#[test]
fn embers_aof_survives_kill_9_and_loads_into_redis() {
    for preamble in ["yes", "no"] {
        for rewrite in [false, true] {
            let preamble_line = format!("aof-use-rdb-preamble {preamble}");
            let lines = ["appendonly yes", "appendfsync always", &preamble_line];
            let mut node = NodeProcess::start_with(NodeKind::Ember, &lines);
            let mut con = connect(node.addr());
            write_dataset(&mut con);
            if rewrite {
                rewrite_then_write(&mut con);
            }
            let before = dump(&mut con);
            assert_plausible(&before);
            let digest = digest(&mut con);
            drop(con);
            node.kill();
            let aofdir = node.dir().join("appendonlydir");
            let names = files(&aofdir);
            let suffix = if preamble == "yes" { "rdb" } else { "aof" };
            let (base, incr) = if rewrite { (2, 2) } else { (1, 1) };
            assert_eq!(
                names,
                [
                    format!("appendonly.aof.{base}.base.{suffix}"),
                    format!("appendonly.aof.{incr}.incr.aof"),
                    "appendonly.aof.manifest".to_string(),
                ],
                "preamble {preamble}, rewrite {rewrite}"
            );
            check_aof(&aofdir.join("appendonly.aof.manifest"));
            node.restart();
            let mut con = connect(node.addr());
            assert_eq!(
                dump(&mut con),
                before,
                "Ember restarted, preamble {preamble}, rewrite {rewrite}"
            );
            drop(con);
            node.kill();
            let dir = node.dir().to_str().expect("UTF-8").to_string();
            let redis = RedisServer::start(&[
                "--dir",
                &dir,
                "--appendonly",
                "yes",
                "--enable-debug-command",
                "yes",
            ]);
            let mut con = connect(redis.addr());
            assert_eq!(
                dump(&mut con),
                before,
                "Redis on Ember's directory, preamble {preamble}, rewrite {rewrite}"
            );
            // Redis's own digest of what it loaded is the one Ember computed.
            assert_eq!(self::digest(&mut con), digest);
            assert_ne!(digest, "0".repeat(40));
        }
    }
}

/// Redis's directory (with and without the RDB preamble, before and after
/// a rewrite) loads into Ember with the same data.
#[test]
fn redis_aof_loads_into_ember() {
    for preamble in ["yes", "no"] {
        for rewrite in [false, true] {
            let dir = TempDir::new(&format!("aof-from-redis-{preamble}-{rewrite}"));
            let before = {
                let redis = RedisServer::start(&[
                    "--dir",
                    dir.str(),
                    "--appendonly",
                    "yes",
                    "--aof-use-rdb-preamble",
                    preamble,
                ]);
                let mut con = connect(redis.addr());
                write_dataset(&mut con);
                if rewrite {
                    rewrite_then_write(&mut con);
                }
                let before = dump(&mut con);
                assert_plausible(&before);
                // Redis writes before it replies: its files are complete.
                before
            };
            let ember = EmberServer::start(&[&format!("dir {}", dir.str()), "appendonly yes"]);
            let mut con = connect(ember.addr());
            assert_eq!(
                dump(&mut con),
                before,
                "Ember on Redis's directory, preamble {preamble}, rewrite {rewrite}"
            );
            // And Ember appends to Redis's last incremental file.
            let _: () = q(&mut con, &["SET", "from-ember", "1"]);
            drop(con);
            drop(ember);
            check_aof(&dir.path().join("appendonlydir/appendonly.aof.manifest"));
        }
    }
}

/// `appendfsync always`: several clients write (SET, INCR, RPUSH, HSET)
/// and note every acknowledged reply; the server is killed while they
/// write; after a restart every acknowledged write is there.
#[test]
fn always_loses_no_acknowledged_write() {
    kill_9_under_load("always");
}

/// `everysec` and `no` lose nothing to a SIGKILL of the process either:
/// a reply leaves only after its record was written to the file (only a
/// crash of the machine loses what was not yet fsynced).
#[test]
fn everysec_and_no_lose_nothing_to_a_process_kill() {
    kill_9_under_load("everysec");
    kill_9_under_load("no");
}

fn kill_9_under_load(policy: &str) {
    let policy_line = format!("appendfsync {policy}");
    let lines = ["appendonly yes", &policy_line];
    let mut node = NodeProcess::start_with(NodeKind::Ember, &lines);
    let addr = node.addr();
    let clients = 4;
    // Each writer stops at its first failed reply (the kill), and reports
    // the last operation acknowledged.
    let (acked_tx, acked_rx) = std::sync::mpsc::channel::<(usize, i64)>();
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let writers: Vec<_> = (0..clients)
        .map(|c| {
            let addr = addr.clone();
            let acked_tx = acked_tx.clone();
            let progress = progress.clone();
            std::thread::spawn(move || {
                let mut con = connect(&addr);
                let mut last = 0i64;
                for i in 1..=100_000i64 {
                    let ok = redis::pipe()
                        .atomic()
                        .cmd("INCR")
                        .arg(format!("counter:{c}"))
                        .cmd("RPUSH")
                        .arg(format!("list:{c}"))
                        .arg(i)
                        .cmd("SET")
                        .arg(format!("last:{c}"))
                        .arg(i)
                        .cmd("HSET")
                        .arg(format!("hash:{c}"))
                        .arg(i)
                        .arg(i)
                        .query::<redis::Value>(&mut con)
                        .is_ok();
                    if !ok {
                        break;
                    }
                    // Plain commands too, outside MULTI.
                    if redis::cmd("INCR")
                        .arg(format!("plain:{c}"))
                        .query::<i64>(&mut con)
                        .is_err()
                    {
                        break;
                    }
                    last = i;
                    progress.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let _ = acked_tx.send((c, last));
            })
        })
        .collect();
    drop(acked_tx);
    // Kill once enough was written, while the writers still write.
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress.load(std::sync::atomic::Ordering::Relaxed) < 2000 {
        assert!(Instant::now() < deadline, "the writers made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    node.kill();
    let acked: Vec<(usize, i64)> = acked_rx.iter().collect();
    for w in writers {
        w.join().expect("writer");
    }
    assert_eq!(acked.len(), clients);
    node.restart();
    let mut con = connect(node.addr());
    for (c, last) in acked {
        assert!(last > 0, "client {c} wrote nothing");
        let counter: i64 = q(&mut con, &["GET", &format!("counter:{c}")]);
        let plain: i64 = q(&mut con, &["GET", &format!("plain:{c}")]);
        let len: i64 = q(&mut con, &["LLEN", &format!("list:{c}")]);
        let hlen: i64 = q(&mut con, &["HLEN", &format!("hash:{c}")]);
        // The write in flight when the server died may be there too.
        for (what, got) in [
            ("counter", counter),
            ("plain", plain),
            ("list", len),
            ("hash", hlen),
        ] {
            assert!(
                got == last || got == last + 1,
                "{policy}, client {c}: {what} is {got}, {last} acknowledged"
            );
        }
        // A transaction is all or nothing.
        assert_eq!(counter, len, "client {c}");
        assert_eq!(counter, hlen, "client {c}");
    }
}

/// Runs a server on `dir` with `lines`; `Err` is why it did not start.
fn start_result(dir: &TempDir, lines: &[&str]) -> Result<(), String> {
    let mut config = server::Config::default();
    let text = format!("dir {}\nsave \"\"\n{}", dir.str(), lines.join("\n"));
    config.load_file(&text).expect("valid configuration");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        // Stops as soon as it has loaded (or failed to).
        server::run(listener, config, async {})
            .await
            .map_err(|e| e.to_string())
    })
}

/// The last incremental file cut at every offset inside its last record:
/// with `aof-load-truncated yes` Ember loads what is whole (and truncates
/// the file there, as Redis does); with `no` it refuses to start. A
/// corrupt file is refused with the file and offset.
#[test]
fn torn_last_record_is_kept_or_refused_as_configured() {
    let dir = TempDir::new("aof-torn");
    let incr = dir.path().join("appendonlydir/appendonly.aof.1.incr.aof");
    {
        let ember = EmberServer::start(&[&format!("dir {}", dir.str()), "appendonly yes"]);
        let mut con = connect(ember.addr());
        let _: () = q(&mut con, &["SET", "first", "1"]);
        let _: () = q(&mut con, &["SET", "last", "2"]);
    }
    let whole = std::fs::read(&incr).expect("the incremental file");
    let last_record = b"*3\r\n$3\r\nSET\r\n$4\r\nlast\r\n$1\r\n2\r\n";
    assert!(
        whole.ends_with(last_record),
        "{:?}",
        String::from_utf8_lossy(&whole)
    );
    let start = whole.len() - last_record.len();
    for cut in start + 1..whole.len() {
        std::fs::write(&incr, &whole[..cut]).expect("cut");
        let refused = start_result(&dir, &["appendonly yes", "aof-load-truncated no"])
            .expect_err("a torn file must be refused with aof-load-truncated no");
        assert!(
            refused.contains(
                "Unexpected end of file reading the append only file appendonly.aof.1.incr.aof"
            ),
            "{refused}"
        );
        assert_eq!(
            std::fs::read(&incr).expect("file").len(),
            cut,
            "left as it was"
        );
        let ember = EmberServer::start(&[&format!("dir {}", dir.str()), "appendonly yes"]);
        let mut con = connect(ember.addr());
        let first: Option<String> = q(&mut con, &["GET", "first"]);
        let last: Option<String> = q(&mut con, &["GET", "last"]);
        assert_eq!((first.as_deref(), last), (Some("1"), None), "cut at {cut}");
        drop(con);
        drop(ember);
        assert_eq!(
            std::fs::read(&incr).expect("file").len(),
            start,
            "truncated to its last whole record"
        );
    }
    // Not the AOF format: refused with the file and offset, whatever
    // aof-load-truncated says.
    let mut bad = whole[..start].to_vec();
    bad.extend_from_slice(b"garbage\r\n");
    std::fs::write(&incr, &bad).expect("write");
    let refused = start_result(&dir, &["appendonly yes"]).expect_err("refused");
    assert!(
        refused.contains(&format!(
            "Bad file format reading the append only file appendonly.aof.1.incr.aof (at offset {start})"
        )),
        "{refused}"
    );
    // An unknown command is refused by name.
    let mut bad = whole[..start].to_vec();
    bad.extend_from_slice(b"*1\r\n$7\r\nnosuchx\r\n");
    std::fs::write(&incr, &bad).expect("write");
    let refused = start_result(&dir, &["appendonly yes"]).expect_err("refused");
    assert!(refused.contains("Unknown command 'nosuchx'"), "{refused}");
}

/// `CONFIG SET appendonly yes` writes a base of the data already there,
/// then appends; INFO persistence reports it; `no` stops appending.
#[test]
fn config_set_appendonly_starts_a_rewrite() {
    let dir = TempDir::new("aof-config-set");
    let ember = EmberServer::start(&[&format!("dir {}", dir.str())]);
    let mut con = connect(ember.addr());
    let info: String = q(&mut con, &["INFO", "persistence"]);
    assert!(info.contains("aof_enabled:0"), "{info}");
    assert!(!info.contains("aof_current_size"), "{info}");
    let _: () = q(&mut con, &["SET", "before", "1"]);
    let _: () = q(&mut con, &["CONFIG", "SET", "appendonly", "yes"]);
    let _: () = q(&mut con, &["SET", "after", "2"]);
    wait_rewrite(&mut con);
    let info: String = q(&mut con, &["INFO", "persistence"]);
    assert!(info.contains("aof_enabled:1"), "{info}");
    assert!(info.contains("aof_rewrites:1"), "{info}");
    assert!(info.contains("aof_current_size:"), "{info}");
    let cfg: Vec<String> = q(&mut con, &["CONFIG", "GET", "appendonly"]);
    assert_eq!(cfg, ["appendonly", "yes"]);
    let err = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appenddirname")
        .arg("x")
        .query::<()>(&mut con)
        .expect_err("immutable");
    assert!(
        err.to_string().contains("can't set immutable config"),
        "{err}"
    );
    drop(con);
    drop(ember);
    check_aof(&dir.path().join("appendonlydir/appendonly.aof.manifest"));
    let redis = RedisServer::start(&["--dir", dir.str(), "--appendonly", "yes"]);
    let mut con = connect(redis.addr());
    let before: Option<String> = q(&mut con, &["GET", "before"]);
    let after: Option<String> = q(&mut con, &["GET", "after"]);
    assert_eq!(
        (before.as_deref(), after.as_deref()),
        (Some("1"), Some("2"))
    );
}

/// Rewrites while clients write lose nothing: after several BGREWRITEAOFs
/// under a write load (and a SIGKILL), Ember and Redis both load exactly
/// the data the server held.
#[test]
fn rewrites_under_write_load_lose_nothing() {
    for preamble in ["yes", "no"] {
        let preamble_line = format!("aof-use-rdb-preamble {preamble}");
        let lines = ["appendonly yes", &preamble_line];
        let mut node = NodeProcess::start_with(NodeKind::Ember, &lines);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers: Vec<_> = (0..3)
            .map(|c| {
                let addr = node.addr();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut con = connect(&addr);
                    let mut i = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        i += 1;
                        let db = (i % 3).to_string();
                        let _: () = q(&mut con, &["SELECT", &db]);
                        let _: i64 = q(&mut con, &["INCR", &format!("n:{c}")]);
                        let _: i64 = q(
                            &mut con,
                            &["RPUSH", &format!("l:{c}:{}", i % 7), &i.to_string()],
                        );
                        let _: i64 = q(
                            &mut con,
                            &[
                                "HSET",
                                &format!("h:{c}"),
                                &(i % 50).to_string(),
                                &i.to_string(),
                            ],
                        );
                        let _: i64 = q(
                            &mut con,
                            &[
                                "ZADD",
                                &format!("z:{c}"),
                                &i.to_string(),
                                &(i % 30).to_string(),
                            ],
                        );
                        if i.is_multiple_of(5) {
                            let _: i64 = q(&mut con, &["DEL", &format!("l:{c}:{}", i % 7)]);
                        }
                    }
                })
            })
            .collect();
        let mut con = connect(node.addr());
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(50));
            let _: String = q(&mut con, &["BGREWRITEAOF"]);
            wait_rewrite(&mut con);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for w in writers {
            w.join().expect("writer");
        }
        let before = dump(&mut con);
        assert!(before.len() > 20, "{}", before.len());
        let info: String = q(&mut con, &["INFO", "persistence"]);
        assert!(info.contains("aof_rewrites:4"), "{info}");
        drop(con);
        node.kill();
        let aofdir = node.dir().join("appendonlydir");
        assert_eq!(files(&aofdir).len(), 3, "{:?}", files(&aofdir));
        check_aof(&aofdir.join("appendonly.aof.manifest"));
        node.restart();
        let mut con = connect(node.addr());
        assert_eq!(dump(&mut con), before, "Ember, preamble {preamble}");
        drop(con);
        node.kill();
        let dir = node.dir().to_str().expect("UTF-8").to_string();
        let redis = RedisServer::start(&["--dir", &dir, "--appendonly", "yes"]);
        let mut con = connect(redis.addr());
        assert_eq!(dump(&mut con), before, "Redis, preamble {preamble}");
    }
}

/// DEBUG LOADAOF replaces the keyspace with what the files hold: the same
/// data, for a dataset written before and after a rewrite; a damaged file
/// is refused and the keyspace kept.
#[test]
fn debug_loadaof_reloads_the_same_data() {
    let dir = TempDir::new("aof-loadaof");
    let ember = EmberServer::start(&[&format!("dir {}", dir.str()), "appendonly yes"]);
    let mut con = connect(ember.addr());
    write_dataset(&mut con);
    rewrite_then_write(&mut con);
    let _: i64 = q(&mut con, &["INCR", "n"]);
    let _: () = q(&mut con, &["SET", "n", "15"]);
    let before = dump(&mut con);
    assert_plausible(&before);
    let _: () = q(&mut con, &["DEBUG", "LOADAOF"]);
    assert_eq!(dump(&mut con), before);
    let incr = dir.path().join("appendonlydir/appendonly.aof.2.incr.aof");
    let mut data = std::fs::read(&incr).expect("incr file");
    data.extend_from_slice(b"junk\r\n");
    std::fs::write(&incr, &data).expect("write");
    let err = redis::cmd("DEBUG")
        .arg("LOADAOF")
        .query::<()>(&mut con)
        .expect_err("a damaged file is refused");
    assert!(err.to_string().contains("Bad file format"), "{err}");
    assert_eq!(dump(&mut con), before);
}

/// A replica's AOF is its master's stream: after a full sync (which
/// restarts the AOF from the master's data) and the stream that follows,
/// the replica's directory, loaded by Redis, holds the master's data.
#[test]
fn a_replica_appends_its_masters_stream() {
    let master = EmberServer::start(&[]);
    let mut mcon = connect(master.addr());
    let _: () = q(&mut mcon, &["SET", "before-sync", "1"]);
    let _: () = q(&mut mcon, &["SELECT", "2"]);
    let _: i64 = q(&mut mcon, &["RPUSH", "db2", "a", "b"]);
    let _: () = q(&mut mcon, &["SELECT", "0"]);
    let replicaof = format!("replicaof 127.0.0.1 {}", master.addr().port());
    let mut replica = NodeProcess::start_with(NodeKind::Ember, &["appendonly yes", &replicaof]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rcon = connect(replica.addr());
    loop {
        let info: String = q(&mut rcon, &["INFO", "replication"]);
        if info.contains("master_link_status:up") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never synced: {info}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    write_dataset(&mut mcon);
    let acked: i64 = q(&mut mcon, &["WAIT", "1", "10000"]);
    assert_eq!(acked, 1);
    let want = dump(&mut mcon);
    assert_eq!(dump(&mut rcon), want, "the replica follows");
    // Everything the replica applied is in its file before the kill.
    loop {
        let info: String = q(&mut rcon, &["INFO", "persistence"]);
        if info.contains("aof_buffer_length:0") && info.contains("aof_rewrite_in_progress:0") {
            assert!(info.contains("aof_enabled:1"), "{info}");
            break;
        }
        assert!(Instant::now() < deadline, "the AOF never settled: {info}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(rcon);
    replica.kill();
    let dir = replica.dir().to_str().expect("UTF-8").to_string();
    check_aof(&replica.dir().join("appendonlydir/appendonly.aof.manifest"));
    let redis = RedisServer::start(&["--dir", &dir, "--appendonly", "yes"]);
    let mut con = connect(redis.addr());
    assert_eq!(dump(&mut con), want, "Redis on the replica's directory");
}

/// Turning the AOF off while its first rewrite runs stops the rewrite,
/// which installs nothing: no manifest names a base never finished.
#[test]
fn turning_the_aof_off_stops_its_rewrite() {
    let dir = TempDir::new("aof-cancel");
    let ember = EmberServer::start(&[&format!("dir {}", dir.str())]);
    let mut con = connect(ember.addr());
    let _: () = q(&mut con, &["SET", "k", "v"]);
    // Ten seconds a key: the rewrite waits until it is stopped.
    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "rdb-key-save-delay", "10000000"],
    );
    let _: () = q(&mut con, &["CONFIG", "SET", "appendonly", "yes"]);
    let info: String = q(&mut con, &["INFO", "persistence"]);
    assert!(info.contains("aof_rewrite_in_progress:1"), "{info}");
    let _: () = q(&mut con, &["CONFIG", "SET", "appendonly", "no"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let info: String = q(&mut con, &["INFO", "persistence"]);
        if info.contains("aof_rewrite_in_progress:0") {
            assert!(info.contains("aof_last_bgrewrite_status:err"), "{info}");
            assert!(info.contains("aof_enabled:0"), "{info}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rewrite never stopped: {info}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let manifest = dir.path().join("appendonlydir/appendonly.aof.manifest");
    assert!(!manifest.exists(), "a manifest was installed");
    // A later rewrite, with no delay, completes.
    let _: () = q(&mut con, &["CONFIG", "SET", "rdb-key-save-delay", "0"]);
    let _: () = q(&mut con, &["CONFIG", "SET", "appendonly", "yes"]);
    wait_rewrite(&mut con);
    assert!(manifest.exists());
}

/// Function libraries live in the AOF as Redis keeps them: FUNCTION LOAD
/// in the incremental file, and in a rewritten base (FUNCTION2 records
/// with the preamble, FUNCTION LOAD commands without) taken at the
/// snapshot's instant. Ember restarted from its directory, and Redis
/// started on it, both call the functions.
#[test]
fn function_libraries_survive_rewrites_and_load_into_redis() {
    let lib = "#!lua name=aoflib\nredis.register_function('hi', function(keys) return redis.call('INCR', keys[1]) end)";
    let lib2 = "#!lua name=later\nredis.register_function('later', function() return 7 end)";
    for preamble in ["yes", "no"] {
        let preamble_line = format!("aof-use-rdb-preamble {preamble}");
        let lines = ["appendonly yes", "appendfsync always", &preamble_line];
        let mut node = NodeProcess::start_with(NodeKind::Ember, &lines);
        let mut con = connect(node.addr());
        let _: String = q(&mut con, &["FUNCTION", "LOAD", lib]);
        let _: i64 = q(&mut con, &["FCALL", "hi", "1", "n"]);
        rewrite_then_write(&mut con);
        // After the rewrite: in the new incremental file only.
        let _: String = q(&mut con, &["FUNCTION", "LOAD", lib2]);
        let _: i64 = q(&mut con, &["FCALL", "hi", "1", "n"]);
        drop(con);
        node.kill();
        node.restart();
        let mut con = connect(node.addr());
        let n: i64 = q(&mut con, &["FCALL", "hi", "1", "n"]);
        assert_eq!(n, 3, "Ember restarted, preamble {preamble}");
        let seven: i64 = q(&mut con, &["FCALL", "later", "0"]);
        assert_eq!(seven, 7);
        drop(con);
        node.kill();
        let dir = node.dir().to_str().expect("UTF-8").to_string();
        let redis = RedisServer::start(&["--dir", &dir, "--appendonly", "yes"]);
        let mut con = connect(redis.addr());
        let n: i64 = q(&mut con, &["FCALL", "hi", "1", "n"]);
        assert_eq!(n, 4, "Redis on Ember's directory, preamble {preamble}");
        let seven: i64 = q(&mut con, &["FCALL", "later", "0"]);
        assert_eq!(seven, 7);
    }
}

/// A field of `INFO persistence`, as a number.
fn info_field(con: &mut Connection, name: &str) -> u64 {
    let info: String = q(con, &["INFO", "persistence"]);
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {info}"))
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// `appendfsync everysec` on a disk whose fsync does not return (DEBUG
/// AOF-FSYNC-HOLD holds it): while it runs, writes of the buffer wait and
/// replies still leave; after Redis's two seconds a write goes ahead
/// anyway, counted in `aof_delayed_fsync`; once the fsync returns,
/// everything reaches the file and loads back.
#[test]
fn everysec_postpones_writes_while_the_fsync_runs() {
    let dir = TempDir::new("aof-delayed-fsync");
    let ember = EmberServer::start(&[
        &format!("dir {}", dir.str()),
        "appendonly yes",
        "appendfsync everysec",
    ]);
    let mut con = connect(ember.addr());
    let incr = dir.path().join("appendonlydir/appendonly.aof.1.incr.aof");
    let _: () = q(&mut con, &["DEBUG", "AOF-FSYNC-HOLD", "1"]);
    // Written at once (no fsync runs yet); the next second's fsync holds.
    let _: () = q(&mut con, &["SET", "before", "1"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while info_field(&mut con, "aof_pending_bio_fsync") == 0 {
        assert!(Instant::now() < deadline, "the fsync never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(info_field(&mut con, "aof_delayed_fsync"), 0);
    // Writes while it is held: each reply arrives; the file holds a key
    // only once a write went ahead (read the file, then the count).
    let mut keys = Vec::new();
    let mut postponed = 0;
    loop {
        let key = format!("during-{}", keys.len());
        let _: () = q(&mut con, &["SET", &key, "1"]);
        keys.push(key);
        let data = std::fs::read(&incr).expect("incr file");
        let delayed = info_field(&mut con, "aof_delayed_fsync");
        if delayed == 0 {
            for key in &keys {
                assert!(!contains(&data, key), "{key} was written during the fsync");
            }
            postponed += 1;
        } else {
            // The write that went ahead took the whole buffer.
            let data = std::fs::read(&incr).expect("incr file");
            assert!(contains(&data, "during-0"), "the delayed write is missing");
            assert_eq!(delayed, 1);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no write went ahead of the fsync"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _: () = q(&mut con, &["DEBUG", "AOF-FSYNC-HOLD", "0"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while info_field(&mut con, "aof_pending_bio_fsync") == 1 {
        assert!(Instant::now() < deadline, "the fsync never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _: () = q(&mut con, &["SET", "after", "1"]);
    let data = std::fs::read(&incr).expect("incr file");
    for key in keys.iter().map(String::as_str).chain(["before", "after"]) {
        assert!(contains(&data, key), "{key} is not in the file");
    }
    let _: () = q(&mut con, &["DEBUG", "LOADAOF"]);
    let size: usize = q(&mut con, &["DBSIZE"]);
    assert_eq!(size, keys.len() + 2, "after {postponed} postponed writes");
}

/// While DEBUG LOADAOF replays a large file, another client's PING gets
/// `-LOADING Redis is loading the dataset in memory` and its INFO says
/// `loading:1`, as in Redis; afterwards both are back to normal. The
/// poller races the load, so a load it missed is tried again (a few
/// times at most; each load takes a good while).
#[test]
fn debug_loadaof_answers_loading_to_other_clients() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = TempDir::new("aof-loading");
    let ember = EmberServer::start(&[
        &format!("dir {}", dir.str()),
        "appendonly yes",
        "aof-use-rdb-preamble no",
    ]);
    let mut con = connect(ember.addr());
    const KEYS: usize = 200_000;
    for chunk in 0..KEYS / 10_000 {
        let mut pipe = redis::pipe();
        for i in chunk * 10_000..(chunk + 1) * 10_000 {
            pipe.cmd("SET").arg(format!("key:{i}")).arg(i).ignore();
        }
        let _: () = pipe.query(&mut con).expect("pipeline");
    }
    let mut poller = connect(ember.addr());
    let (mut saw_error, mut saw_info) = (false, false);
    for _attempt in 0..10 {
        let done = Arc::new(AtomicBool::new(false));
        let loader = {
            let done = done.clone();
            let addr = ember.addr();
            std::thread::spawn(move || {
                let mut con = connect(addr);
                let _: () = q(&mut con, &["DEBUG", "LOADAOF"]);
                done.store(true, Ordering::Release);
            })
        };
        while !done.load(Ordering::Acquire) {
            match redis::cmd("PING").query::<String>(&mut poller) {
                Ok(pong) => assert_eq!(pong, "PONG"),
                Err(e) => {
                    assert_eq!(e.code(), Some("LOADING"), "{e}");
                    assert!(
                        e.to_string()
                            .contains("Redis is loading the dataset in memory"),
                        "{e}"
                    );
                    saw_error = true;
                    let info: String = q(&mut poller, &["INFO", "persistence"]);
                    saw_info |= info.contains("loading:1\r\n");
                }
            }
        }
        loader.join().expect("the loader");
        if saw_error && saw_info {
            break;
        }
    }
    assert!(
        saw_error && saw_info,
        "never saw the load ({saw_error}, {saw_info})"
    );
    let info: String = q(&mut poller, &["INFO", "persistence"]);
    assert!(info.contains("loading:0\r\n"), "{info}");
    let _: String = q(&mut poller, &["PING"]);
    let size: usize = q(&mut poller, &["DBSIZE"]);
    assert_eq!(size, KEYS);
}

/// `aof-disable-auto-gc`: with it on, the files two rewrites replaced
/// stay, named as history in the manifest; turned off, they leave the
/// manifest at once and are deleted. Ember's manifest and files match
/// redis-server's, step by step.
#[test]
fn disabling_auto_gc_keeps_history_files_as_redis_does() {
    let steps = |dir: &TempDir, con: &mut Connection| -> Vec<(String, Vec<String>)> {
        let aof_dir = dir.path().join("appendonlydir");
        let manifest = aof_dir.join("appendonly.aof.manifest");
        let snap = |aof_dir: &Path| {
            (
                std::fs::read_to_string(&manifest).expect("a manifest"),
                files(aof_dir),
            )
        };
        let mut seen = vec![snap(&aof_dir)];
        let _: () = q(con, &["CONFIG", "SET", "aof-disable-auto-gc", "yes"]);
        for i in 0..2 {
            let _: () = q(con, &["SET", "k", &i.to_string()]);
            let _: String = q(con, &["BGREWRITEAOF"]);
            wait_rewrite(con);
            seen.push(snap(&aof_dir));
        }
        let _: () = q(con, &["CONFIG", "SET", "aof-disable-auto-gc", "no"]);
        // The manifest changes at once; the files go soon after (Redis
        // deletes them on a background thread).
        let deadline = Instant::now() + Duration::from_secs(10);
        let last = loop {
            let now = snap(&aof_dir);
            if now.1.len() <= 3 || Instant::now() > deadline {
                break now;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        seen.push(last);
        seen
    };
    let edir = TempDir::new("aof-gc-ember");
    let ember = EmberServer::start(&[&format!("dir {}", edir.str()), "appendonly yes"]);
    let ember_steps = steps(&edir, &mut connect(ember.addr()));
    let rdir = TempDir::new("aof-gc-redis");
    let redis = RedisServer::start(&["--dir", rdir.str(), "--appendonly", "yes"]);
    let redis_steps = steps(&rdir, &mut connect(redis.addr()));
    assert_eq!(ember_steps, redis_steps);
    let (_, kept) = &ember_steps[2];
    assert_eq!(
        kept.len(),
        7,
        "three bases, three incremental files and the manifest: {kept:?}"
    );
}

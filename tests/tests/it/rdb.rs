//! RDB files between Ember and a real `redis-server` 7.0, both ways: a
//! file Redis saves loads into Ember with every key, value and TTL intact,
//! a file Ember saves loads into Redis (and passes `redis-check-rdb`), and
//! files Ember cannot hold, or that are damaged, stop it with a clear error.
//!
//! The `ember-server` binary itself (its flags, its exit code) is tested
//! in `crates/server/tests/binary.rs`; here Ember runs in process with the
//! same configuration.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ember_tests::{EmberServer, RedisServer};
use redis::Connection;

/// A private directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ember-rdb-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn file(&self) -> PathBuf {
        self.0.join("dump.rdb")
    }

    fn str(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A key's expected contents.
#[derive(Debug, Clone)]
enum Data {
    Str(Vec<u8>),
    List(Vec<Vec<u8>>),
    /// A set's members and the encoding it must have.
    Set(Vec<Vec<u8>>, &'static str),
    /// A sorted set's members with their scores (as ZADD takes them), and
    /// the encoding it must have.
    ZSet(Vec<(String, Vec<u8>)>, &'static str),
}

/// One key: database, name, contents, TTL in milliseconds.
#[derive(Debug, Clone)]
struct Key {
    db: i64,
    name: Vec<u8>,
    data: Data,
    ttl_ms: Option<i64>,
}

fn key(db: i64, name: &[u8], data: Data, ttl_ms: Option<i64>) -> Key {
    Key {
        db,
        name: name.to_vec(),
        data,
        ttl_ms,
    }
}

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Strings of every encoding, lists small and large, sets of both
/// encodings, TTLs, four databases.
fn dataset() -> Vec<Key> {
    let s = |v: &[u8]| Data::Str(v.to_vec());
    let day = Some(86_400_000);
    vec![
        // int, embstr, raw, long compressible, binary, empty.
        key(0, b"int", s(b"12345"), None),
        key(0, b"neg", s(b"-7"), None),
        key(0, b"int64", s(b"9223372036854775807"), None),
        key(0, b"int32-edge", s(b"2147483648"), None),
        key(0, b"not-canonical", s(b"007"), None),
        key(0, b"embstr", s(b"hello world"), day),
        key(0, b"raw", Data::Str(noise(100, 1)), None),
        key(0, b"compressible", Data::Str(b"abc".repeat(3000)), None),
        key(
            0,
            b"binary\x00\xff",
            s(b"\x00\x01\r\n\xfe\xff"),
            Some(3_600_000),
        ),
        key(0, b"empty", s(b""), None),
        key(0, b"big-random", Data::Str(noise(200_000, 2)), None),
        // Lists: a small listpack node; many nodes; elements over 8 KiB;
        // integers of every listpack width.
        key(
            0,
            b"small-list",
            Data::List(vec![
                b"a".to_vec(),
                b"1".to_vec(),
                b"".to_vec(),
                b"-300".to_vec(),
            ]),
            day,
        ),
        key(
            0,
            b"many-nodes",
            Data::List(
                (0..30_000)
                    .map(|i| format!("item:{i}").into_bytes())
                    .collect(),
            ),
            None,
        ),
        key(
            0,
            b"huge-elements",
            Data::List(vec![
                b"head".to_vec(),
                noise(9_000, 3),
                b"x".repeat(70_000),
                b"tail".to_vec(),
            ]),
            None,
        ),
        key(
            0,
            b"int-widths",
            Data::List(
                [
                    0i64,
                    127,
                    128,
                    -4096,
                    4095,
                    -32768,
                    32767,
                    -8_388_608,
                    8_388_607,
                    i64::from(i32::MIN),
                    i64::MAX,
                    i64::MIN,
                ]
                .iter()
                .map(|i| i.to_string().into_bytes())
                .collect(),
            ),
            None,
        ),
        key(1, b"db1-string", s(b"in db 1"), Some(50_000)),
        key(1, b"db1-list", Data::List(vec![b"x".to_vec(); 500]), None),
        key(7, b"db7", s(b"seven"), None),
        // Sets: intsets of 16 and 64 bits, at the limit and over it, and
        // hashtables with long members.
        key(2, b"intset", set(["3", "-1", "200"]), day),
        key(2, b"intset-wide", set(["1", "70000", "-5000000000"]), None),
        key(2, b"intset-512", ints(512), None),
        key(2, b"ints-1280", ints(1280), None),
        key(
            2,
            b"strings",
            set(["a", "", "1", &"long member ".repeat(10)]),
            None,
        ),
        key(
            2,
            b"big-strings",
            Data::Set(
                (0..20_000)
                    .map(|i| format!("member:{i}").into_bytes())
                    .collect(),
                "hashtable",
            ),
            None,
        ),
        // Sorted sets: listpacks (integer and text scores, infinities),
        // one at the limit, skiplists by size and by a long member.
        key(
            3,
            b"zsmall",
            zset(&[("1", "a"), ("2.5", "b"), ("-inf", "c"), ("inf", "d")]),
            day,
        ),
        key(
            3,
            b"zints",
            zset(&[("100000000000000000", "x"), ("-7", "y"), ("0", "z")]),
            None,
        ),
        key(3, b"z128", zrange(128), None),
        key(3, b"z129", zrange(129), None),
        key(3, b"z5000", zrange(5000), None),
        key(
            3,
            b"zlong",
            zset(&[("1", &"long member ".repeat(10)), ("0.1", "short")]),
            None,
        ),
    ]
}

/// A sorted set of (score, member) pairs, listpack if they fit Redis's
/// defaults.
fn zset(pairs: &[(&str, &str)]) -> Data {
    let packed = pairs.len() <= 128 && pairs.iter().all(|(_, m)| m.len() <= 64);
    Data::ZSet(
        pairs
            .iter()
            .map(|(s, m)| (s.to_string(), m.as_bytes().to_vec()))
            .collect(),
        if packed { "listpack" } else { "skiplist" },
    )
}

/// A sorted set of `n` members with scattered scores.
fn zrange(n: usize) -> Data {
    Data::ZSet(
        (0..n)
            .map(|i| {
                (
                    format!("{}", (i * 7919) % 1000),
                    format!("m{i}").into_bytes(),
                )
            })
            .collect(),
        if n <= 128 { "listpack" } else { "skiplist" },
    )
}

/// A set of `members`, intset if they all are integers and fit.
fn set<'a>(members: impl IntoIterator<Item = &'a str>) -> Data {
    let members: Vec<Vec<u8>> = members.into_iter().map(|m| m.as_bytes().to_vec()).collect();
    let ints = members.len() <= 512
        && members.iter().all(|m| {
            let s = String::from_utf8_lossy(m);
            s.parse::<i64>().is_ok_and(|v| v.to_string() == s)
        });
    Data::Set(members, if ints { "intset" } else { "hashtable" })
}

/// The set of 0, 3, 6... (`n` of them).
fn ints(n: i64) -> Data {
    let members = (0..n).map(|i| (i * 3).to_string().into_bytes()).collect();
    Data::Set(members, if n <= 512 { "intset" } else { "hashtable" })
}

fn connect(addr: std::net::SocketAddr) -> Connection {
    let client = redis::Client::open(format!("redis://{addr}/")).expect("client");
    client.get_connection().expect("connection")
}

fn select(con: &mut Connection, db: i64) {
    let _: () = redis::cmd("SELECT").arg(db).query(con).expect("SELECT");
}

/// Writes `keys` through commands.
fn fill(con: &mut Connection, keys: &[Key]) {
    for k in keys {
        select(con, k.db);
        match &k.data {
            Data::Str(v) => {
                let _: () = redis::cmd("SET")
                    .arg(&k.name)
                    .arg(v)
                    .query(con)
                    .expect("SET");
            }
            Data::List(items) => {
                for chunk in items.chunks(1000) {
                    let _: i64 = redis::cmd("RPUSH")
                        .arg(&k.name)
                        .arg(chunk)
                        .query(con)
                        .expect("RPUSH");
                }
            }
            Data::Set(members, _) => {
                for chunk in members.chunks(1000) {
                    let _: i64 = redis::cmd("SADD")
                        .arg(&k.name)
                        .arg(chunk)
                        .query(con)
                        .expect("SADD");
                }
            }
            Data::ZSet(pairs, _) => {
                for chunk in pairs.chunks(1000) {
                    let mut zadd = redis::cmd("ZADD");
                    zadd.arg(&k.name);
                    for (score, member) in chunk {
                        zadd.arg(score).arg(member);
                    }
                    let _: i64 = zadd.query(con).expect("ZADD");
                }
            }
        }
        if let Some(ttl) = k.ttl_ms {
            let _: i64 = redis::cmd("PEXPIRE")
                .arg(&k.name)
                .arg(ttl)
                .query(con)
                .expect("PEXPIRE");
        }
    }
    select(con, 0);
}

/// Checks that the server holds exactly `keys`.
fn check(con: &mut Connection, keys: &[Key], who: &str) {
    let mut dbs: Vec<i64> = keys.iter().map(|k| k.db).collect();
    dbs.sort_unstable();
    dbs.dedup();
    for db in 0..16 {
        select(con, db);
        let size: usize = redis::cmd("DBSIZE").query(con).expect("DBSIZE");
        let want = keys.iter().filter(|k| k.db == db).count();
        assert_eq!(size, want, "{who}: DBSIZE of db {db}");
    }
    for k in keys {
        select(con, k.db);
        let name = String::from_utf8_lossy(&k.name).into_owned();
        let ty: String = redis::cmd("TYPE").arg(&k.name).query(con).expect("TYPE");
        match &k.data {
            Data::Str(v) => {
                assert_eq!(ty, "string", "{who}: type of {name}");
                let got: Vec<u8> = redis::cmd("GET").arg(&k.name).query(con).expect("GET");
                assert!(got == *v, "{who}: value of {name}");
            }
            Data::List(items) => {
                assert_eq!(ty, "list", "{who}: type of {name}");
                let got: Vec<Vec<u8>> = redis::cmd("LRANGE")
                    .arg(&k.name)
                    .arg(0)
                    .arg(-1)
                    .query(con)
                    .expect("LRANGE");
                assert_eq!(got.len(), items.len(), "{who}: length of {name}");
                assert!(got == *items, "{who}: elements of {name}");
            }
            Data::Set(members, encoding) => {
                assert_eq!(ty, "set", "{who}: type of {name}");
                let mut got: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
                    .arg(&k.name)
                    .query(con)
                    .expect("SMEMBERS");
                got.sort();
                let mut want = members.clone();
                want.sort();
                assert!(got == want, "{who}: members of {name}");
                let enc: String = redis::cmd("OBJECT")
                    .arg("ENCODING")
                    .arg(&k.name)
                    .query(con)
                    .expect("OBJECT ENCODING");
                assert_eq!(enc, *encoding, "{who}: encoding of {name}");
            }
            Data::ZSet(pairs, encoding) => {
                assert_eq!(ty, "zset", "{who}: type of {name}");
                let got: Vec<(Vec<u8>, String)> = redis::cmd("ZRANGE")
                    .arg(&k.name)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query(con)
                    .expect("ZRANGE");
                let mut want: Vec<(Vec<u8>, f64)> = pairs
                    .iter()
                    .map(|(s, m)| (m.clone(), s.parse::<f64>().expect("a score")))
                    .collect();
                want.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
                let got: Vec<(Vec<u8>, f64)> = got
                    .into_iter()
                    .map(|(m, s)| (m, s.parse::<f64>().expect("a score")))
                    .collect();
                assert!(got == want, "{who}: members of {name}");
                let enc: String = redis::cmd("OBJECT")
                    .arg("ENCODING")
                    .arg(&k.name)
                    .query(con)
                    .expect("OBJECT ENCODING");
                assert_eq!(enc, *encoding, "{who}: encoding of {name}");
            }
        }
        let pttl: i64 = redis::cmd("PTTL").arg(&k.name).query(con).expect("PTTL");
        match k.ttl_ms {
            None => assert_eq!(pttl, -1, "{who}: {name} has no TTL"),
            Some(ttl) => assert!(
                pttl <= ttl && pttl > ttl - 60_000,
                "{who}: TTL of {name} is {pttl}, set to {ttl}"
            ),
        }
    }
    select(con, 0);
}

fn save(con: &mut Connection) {
    let reply: String = redis::cmd("SAVE").query(con).expect("SAVE");
    assert_eq!(reply, "OK");
}

/// Runs Ember's startup on `dir`/`dbfilename` and stops at once: the load
/// error, if any.
fn ember_load_error(dir: &TempDir, dbfilename: &str) -> Option<String> {
    let mut config = server::Config::default();
    config
        .load_file(&format!(
            "dir {}\ndbfilename {dbfilename}\nsave \"\"",
            dir.str()
        ))
        .expect("valid configuration");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        server::run(listener, config, async {})
            .await
            .err()
            .map(|e| e.to_string())
    })
}

/// Whether `redis-check-rdb` is installed (it ships with redis-server).
fn check_rdb(path: &Path) -> Option<String> {
    let out = Command::new("redis-check-rdb").arg(path).output().ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "redis-check-rdb refused Ember's file:\n{text}"
    );
    Some(text)
}

#[test]
fn a_file_redis_saves_loads_into_ember() {
    let dir = TempDir::new("from-redis");
    let keys = dataset();
    {
        let redis = RedisServer::start(&["--dir", dir.str(), "--enable-debug-command", "yes"]);
        let mut con = connect(redis.addr());
        // Compressed middle nodes (an LZF blob per node) and plain nodes
        // for elements over 5000 bytes: the rarer shapes Redis 7.0 writes.
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("list-compress-depth")
            .arg(1)
            .query(&mut con)
            .expect("CONFIG SET");
        let _: () = redis::cmd("DEBUG")
            .arg("QUICKLIST-PACKED-THRESHOLD")
            .arg(5000)
            .query(&mut con)
            .expect("DEBUG QUICKLIST-PACKED-THRESHOLD");
        fill(&mut con, &keys);
        check(&mut con, &keys, "redis before saving");
        save(&mut con);
    }
    assert!(dir.file().exists());
    let ember = EmberServer::start(&[&format!("dir {}", dir.str()), "dbfilename dump.rdb"]);
    let mut con = connect(ember.addr());
    check(&mut con, &keys, "ember after loading Redis's file");
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query(&mut con)
        .expect("INFO");
    assert!(
        info.contains(&format!("rdb_last_load_keys_loaded:{}\r\n", keys.len())),
        "{info}"
    );
    assert!(info.contains("rdb_changes_since_last_save:0\r\n"), "{info}");
}

#[test]
fn a_file_ember_saves_loads_into_redis() {
    let dir = TempDir::new("from-ember");
    let keys = dataset();
    {
        let ember = EmberServer::start(&[&format!("dir {}", dir.str()), "dbfilename dump.rdb"]);
        let mut con = connect(ember.addr());
        fill(&mut con, &keys);
        save(&mut con);
        // BGSAVE writes the same data; wait for it and check its status.
        let started: String = redis::cmd("BGSAVE").query(&mut con).expect("BGSAVE");
        assert_eq!(started, "Background saving started");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let info: String = redis::cmd("INFO")
                .arg("persistence")
                .query(&mut con)
                .expect("INFO");
            if info.contains("rdb_bgsave_in_progress:0") {
                assert!(info.contains("rdb_last_bgsave_status:ok"), "{info}");
                break;
            }
            assert!(Instant::now() < deadline, "BGSAVE did not finish");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if let Some(report) = check_rdb(&dir.file()) {
        assert!(report.contains("RDB looks OK"), "{report}");
    }
    let redis = RedisServer::start(&["--dir", dir.str(), "--dbfilename", "dump.rdb"]);
    let mut con = connect(redis.addr());
    check(&mut con, &keys, "redis after loading Ember's file");
    // Redis holds the lists as it would its own.
    let enc: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg("many-nodes")
        .query(&mut con)
        .expect("OBJECT ENCODING");
    assert_eq!(enc, "quicklist");
}

#[test]
fn keys_already_expired_are_not_loaded() {
    let dir = TempDir::new("expired");
    {
        let redis = RedisServer::start(&["--dir", dir.str()]);
        let mut con = connect(redis.addr());
        let _: () = redis::cmd("SET")
            .arg("soon")
            .arg("v")
            .arg("PX")
            .arg(800)
            .query(&mut con)
            .unwrap();
        let _: () = redis::cmd("SET")
            .arg("stays")
            .arg("v")
            .query(&mut con)
            .unwrap();
        save(&mut con);
    }
    std::thread::sleep(Duration::from_millis(900));
    let ember = EmberServer::start(&[&format!("dir {}", dir.str())]);
    let mut con = connect(ember.addr());
    let size: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(size, 1);
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query(&mut con)
        .unwrap();
    assert!(info.contains("rdb_last_load_keys_expired:1\r\n"), "{info}");
}

#[test]
fn types_ember_cannot_hold_are_refused_by_name() {
    // Streams cannot even be decoded.
    let dir = TempDir::new("refused-stream");
    {
        let redis = RedisServer::start(&["--dir", dir.str()]);
        let mut con = connect(redis.addr());
        let _: String = redis::cmd("XADD")
            .arg("events")
            .arg("*")
            .arg("f")
            .arg("v")
            .query(&mut con)
            .unwrap();
        save(&mut con);
    }
    let error = ember_load_error(&dir, "dump.rdb").expect("the load fails");
    assert!(
        error.contains("unsupported RDB type 19 (stream) for key 'events'"),
        "{error}"
    );
}

#[test]
fn damaged_files_are_refused_with_a_clear_error() {
    let dir = TempDir::new("damaged");
    {
        let redis = RedisServer::start(&["--dir", dir.str()]);
        let mut con = connect(redis.addr());
        fill(&mut con, &dataset()[..12]);
        save(&mut con);
    }
    let good = std::fs::read(dir.file()).unwrap();
    assert_eq!(ember_load_error(&dir, "dump.rdb"), None);
    // Cut short, anywhere.
    for cut in [5, 9, 100, good.len() / 2, good.len() - 9, good.len() - 1] {
        std::fs::write(dir.path().join("cut.rdb"), &good[..cut]).unwrap();
        let error = ember_load_error(&dir, "cut.rdb").expect("a truncated file fails");
        assert!(error.contains("cut.rdb"), "{error}");
        assert!(
            error.contains("unexpected end of RDB data") || error.contains("corrupt"),
            "cut at {cut}: {error}"
        );
    }
    // A changed byte in a value: the checksum.
    let mut flipped = good.clone();
    let at = flipped
        .windows(11)
        .position(|w| w == b"hello world")
        .unwrap();
    flipped[at] ^= 0x20;
    std::fs::write(dir.path().join("flipped.rdb"), &flipped).unwrap();
    let error = ember_load_error(&dir, "flipped.rdb").expect("a damaged file fails");
    assert!(error.contains("RDB checksum mismatch"), "{error}");
    // Not an RDB file at all, and a newer version.
    std::fs::write(dir.path().join("text.rdb"), b"hello, world").unwrap();
    assert!(
        ember_load_error(&dir, "text.rdb")
            .unwrap()
            .contains("signature")
    );
    let mut newer = good;
    newer[5..9].copy_from_slice(b"0011");
    std::fs::write(dir.path().join("newer.rdb"), &newer).unwrap();
    assert!(
        ember_load_error(&dir, "newer.rdb")
            .unwrap()
            .contains("Can't handle RDB format version 11")
    );
    // No file: an empty keyspace, as before.
    assert_eq!(ember_load_error(&dir, "missing.rdb"), None);
}

#[test]
fn debug_reload_round_trips_through_the_file() {
    let dir = TempDir::new("reload");
    let keys = dataset();
    let ember = EmberServer::start(&[&format!("dir {}", dir.str())]);
    let mut con = connect(ember.addr());
    fill(&mut con, &keys);
    let ok: String = redis::cmd("DEBUG")
        .arg("RELOAD")
        .query(&mut con)
        .expect("DEBUG RELOAD");
    assert_eq!(ok, "OK");
    check(&mut con, &keys, "ember after DEBUG RELOAD");
    // NOSAVE loads the file as it is: a key written since is gone.
    let _: () = redis::cmd("SET")
        .arg("later")
        .arg("v")
        .query(&mut con)
        .unwrap();
    let ok: String = redis::cmd("DEBUG")
        .arg("RELOAD")
        .arg("NOSAVE")
        .query(&mut con)
        .unwrap();
    assert_eq!(ok, "OK");
    check(&mut con, &keys, "ember after DEBUG RELOAD NOSAVE");
    let last: i64 = redis::cmd("LASTSAVE").query(&mut con).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - last).abs() < 60, "LASTSAVE {last}, now {now}");
}

/// Waits (bounded) until no BGSAVE runs.
fn await_bgsave(con: &mut Connection) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query(con)
            .expect("INFO");
        if info.contains("rdb_bgsave_in_progress:0") {
            return;
        }
        assert!(Instant::now() < deadline, "BGSAVE did not finish");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn save_commands_and_their_configuration() {
    let dir = TempDir::new("commands");
    let other = TempDir::new("commands-other");
    let ember = EmberServer::start(&[&format!("dir {}", dir.str())]);
    let mut con = connect(ember.addr());
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    let err = redis::cmd("BGSAVE")
        .arg("NOW")
        .query::<String>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("syntax error"), "{err}");
    let started: String = redis::cmd("BGSAVE")
        .arg("SCHEDULE")
        .query(&mut con)
        .unwrap();
    assert_eq!(started, "Background saving started");
    await_bgsave(&mut con);
    assert!(dir.file().exists());
    // Inside EXEC, Redis's answer.
    let (scheduled,): (String,) = redis::pipe()
        .atomic()
        .cmd("BGSAVE")
        .query(&mut con)
        .unwrap();
    assert_eq!(scheduled, "Background saving scheduled");
    await_bgsave(&mut con);
    // SAVE is refused in a transaction.
    let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
    let err = redis::cmd("SAVE").query::<String>(&mut con).unwrap_err();
    assert!(
        err.to_string().contains("not allowed inside a transaction"),
        "{err}"
    );
    let _: () = redis::cmd("DISCARD").query(&mut con).unwrap();
    // dir and dbfilename: where the next SAVE goes.
    let config_set = |con: &mut Connection, name: &str, value: &str| {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query::<()>(con)
    };
    config_set(&mut con, "dir", other.str()).unwrap();
    config_set(&mut con, "dbfilename", "elsewhere.rdb").unwrap();
    save(&mut con);
    assert!(other.path().join("elsewhere.rdb").exists());
    let err = config_set(&mut con, "dir", "/no/such/directory").unwrap_err();
    assert!(
        err.to_string().contains("No such file or directory"),
        "{err}"
    );
    let err = config_set(&mut con, "dbfilename", "a/b.rdb").unwrap_err();
    assert!(err.to_string().contains("can't be a path"), "{err}");
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(other.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query(&mut con)
        .unwrap();
    assert!(info.contains("rdb_saves:3\r\n"), "{info}");
    assert!(info.contains("rdb_changes_since_last_save:0\r\n"), "{info}");
    let _: () = redis::cmd("SET")
        .arg("k2")
        .arg("v")
        .query(&mut con)
        .unwrap();
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query(&mut con)
        .unwrap();
    assert!(info.contains("rdb_changes_since_last_save:1\r\n"), "{info}");
}

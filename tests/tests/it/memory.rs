//! Memory accounting and eviction (docs/memory.md), against real server
//! processes: Ember nodes are this binary run again, with the counted
//! allocator `main.rs` installs, so `used_memory` is what they count.

use std::time::{Duration, Instant};

use ember_tests::{NodeKind, NodeProcess};
use redis::{Connection, Value};

use crate::redis_crate::{connect, q};

/// The INFO section a field is in.
fn section(field: &str) -> &'static str {
    match field {
        "evicted_keys" => "stats",
        "connected_slaves" => "replication",
        f if f.starts_with("mem_") => "memory",
        f if f.contains("repl") || f.contains("master") => "replication",
        _ => "memory",
    }
}

/// A field of INFO, as a number.
fn info(con: &mut Connection, field: &str) -> i64 {
    let text: String = q(con, &["INFO", section(field)]);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO"))
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{field} is not a number"))
}

/// A field of INFO, as text.
fn info_text(con: &mut Connection, field: &str) -> String {
    let text: String = q(con, &["INFO", section(field)]);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Sends `batch` SETs of `value` (with `EX ttl` when given) to keys
/// `{prefix}{from..}`; returns the error replies.
fn set_batch(
    con: &mut Connection,
    prefix: &str,
    from: usize,
    batch: usize,
    value: &str,
    ttl: Option<u64>,
) -> Vec<String> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for i in from..from + batch {
        let cmd = pipe.cmd("SET").arg(format!("{prefix}{i:08}")).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("EX").arg(ttl);
        }
    }
    let replies: Vec<Value> = pipe.query(con).expect("pipeline");
    replies
        .into_iter()
        .filter_map(|v| match v {
            Value::ServerError(e) => Some(format!("{} {}", e.code(), e.details().unwrap_or(""))),
            _ => None,
        })
        .collect()
}

/// What `used_memory` may exceed `maxmemory` by between commands: each
/// worker thread's count not yet added to the total (4 KiB each), one
/// command's value, and a batch's replies; Redis, which evicts before each
/// command, allows one command's growth too.
const SLACK: i64 = 512 * 1024;

const LIMIT: i64 = 12 << 20;

#[test]
fn every_evicting_policy_stays_within_maxmemory_without_refusing_writes() {
    let value = "v".repeat(400);
    for policy in [
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-random",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
        "allkeys-s3fifo",
    ] {
        let maxmemory = format!("maxmemory {LIMIT}");
        let policy_line = format!("maxmemory-policy {policy}");
        let node = NodeProcess::start_with(NodeKind::Ember, &[&maxmemory, &policy_line]);
        let mut con = connect(node.addr());
        let volatile = policy.starts_with("volatile");
        // About 14 MB of data written, past the limit.
        let (batch, batches) = (1000, 40);
        for b in 0..batches {
            let ttl = volatile.then_some(100_000 + b as u64);
            let errors = set_batch(&mut con, "key:", b * batch, batch, &value, ttl);
            assert!(errors.is_empty(), "{policy}: {errors:?}");
            let used = info(&mut con, "used_memory");
            assert!(
                used <= LIMIT + SLACK,
                "{policy}: used_memory {used} over {LIMIT} after batch {b}"
            );
        }
        // Eviction may go on in the background: count when it stood
        // still around DBSIZE.
        let (evicted, keys) = (0..1000)
            .find_map(|_| {
                let evicted = info(&mut con, "evicted_keys");
                let keys: i64 = q(&mut con, &["DBSIZE"]);
                (info(&mut con, "evicted_keys") == evicted).then_some((evicted, keys))
            })
            .expect("eviction settles");
        assert!(evicted > 0, "{policy}: nothing evicted");
        assert_eq!(
            keys + evicted,
            (batch * batches) as i64,
            "{policy}: every key is either there or evicted"
        );
    }
}

#[test]
fn volatile_policies_evict_only_keys_with_a_deadline_then_refuse() {
    let value = "p".repeat(400);
    for policy in [
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    ] {
        let maxmemory = format!("maxmemory {LIMIT}");
        let policy_line = format!("maxmemory-policy {policy}");
        let node = NodeProcess::start_with(NodeKind::Ember, &[&maxmemory, &policy_line]);
        let mut con = connect(node.addr());
        // Keys with a deadline fill half the room; then keys without one
        // push them out, and once none is left, writes are refused.
        let errors = set_batch(&mut con, "ttl:", 0, 10_000, &value, Some(100_000));
        assert!(errors.is_empty(), "{policy}: {errors:?}");
        let mut written = 0;
        let mut refused = None;
        for b in 0..100 {
            let errors = set_batch(&mut con, "persistent:", b * 1000, 1000, &value, None);
            if let Some(e) = errors.first() {
                refused = Some(e.clone());
                written += 1000 - errors.len();
                break;
            }
            written += 1000;
        }
        let refused = refused.unwrap_or_else(|| panic!("{policy}: never refused"));
        assert!(
            refused.contains("OOM") && refused.contains("command not allowed when used memory"),
            "{policy}: {refused}"
        );
        // Every key without a deadline written is still there; only keys
        // with one were evicted, all of them.
        let keys: i64 = q(&mut con, &["DBSIZE"]);
        let volatile: String = q(&mut con, &["INFO", "keyspace"]);
        assert!(volatile.contains("expires=0"), "{policy}: {volatile}");
        assert_eq!(keys, written as i64, "{policy}");
        assert_eq!(info(&mut con, "evicted_keys"), 10_000, "{policy}");
        // Reads and deletes still work; a delete makes room again.
        let _: Option<String> = q(&mut con, &["GET", "persistent:00000000"]);
        let _: i64 = q(
            &mut con,
            &["DEL", "persistent:00000000", "persistent:00000001"],
        );
    }
}

/// The OOM error, byte for byte as Redis sends it.
#[test]
fn noeviction_refuses_with_redis_error() {
    let mut texts = Vec::new();
    for kind in [NodeKind::Redis, NodeKind::Ember] {
        let node = NodeProcess::start(kind);
        let mut con = connect(node.addr());
        let used = info(&mut con, "used_memory");
        let limit = (used + (1 << 20)).to_string();
        let _: () = q(&mut con, &["CONFIG", "SET", "maxmemory", &limit]);
        let value = "n".repeat(1000);
        let mut error = None;
        for b in 0..100 {
            if let Some(e) = set_batch(&mut con, "k:", b * 100, 100, &value, None).first() {
                error = Some(e.clone());
                break;
            }
        }
        let error = error.expect("refused");
        // Reads are served.
        let _: Option<String> = q(&mut con, &["GET", "k:00000000"]);
        // A raw reply, to compare the bytes. The refused batch's buffers
        // are freed once it is answered, which can bring used_memory back
        // just under the limit: write until a write is refused again.
        let mut raw = ember_tests::connect(node.addr().parse().expect("address"));
        let mut reply = bytes::Bytes::new();
        for i in 0..100 {
            let key = format!("one-more:{i}");
            reply = ember_tests::call(&mut raw, &[b"SET", key.as_bytes(), value.as_bytes()]);
            if reply.starts_with(b"-") {
                break;
            }
        }
        texts.push((error, reply));
    }
    assert_eq!(texts[0].1, texts[1].1);
    assert_eq!(
        &texts[1].1[..],
        b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"
    );
}

#[test]
fn used_memory_moves_by_what_a_model_of_the_keyspace_predicts() {
    let node = NodeProcess::start(NodeKind::Ember);
    let mut con = connect(node.addr());
    // Enough keys that every shard's table holds many (a table's first
    // group is paid by its first key), strings of 200 bytes.
    let n = 100_000;
    let value = "m".repeat(200);
    let before = info(&mut con, "used_memory");
    for b in 0..n / 1000 {
        assert!(set_batch(&mut con, "model:", b * 1000, 1000, &value, None).is_empty());
    }
    let after = info(&mut con, "used_memory");
    // The model: a 64-byte slot (jemalloc's 64-byte class, the key
    // inline), the value in a 224-byte class, and the table's pointer: 64
    // bytes per 7 places, 44% to 87% full: 10.5 to 21 bytes.
    let per_key = (after - before) as f64 / n as f64;
    let (low, high) = (64.0 + 224.0 + 10.5, 64.0 + 224.0 + 21.0);
    // The counts not yet added (32 KiB per thread) and the connection's
    // buffers: 2% of the 33 MB written.
    let tolerance = 0.02;
    assert!(
        per_key >= low * (1.0 - tolerance) && per_key <= high * (1.0 + tolerance),
        "{per_key} bytes per key, expected {low}..{high}"
    );
    // MEMORY USAGE agrees with the same model.
    let usage: i64 = q(&mut con, &["MEMORY", "USAGE", "model:00000042"]);
    assert!(
        (usage as f64 - per_key).abs() / per_key < 0.1,
        "MEMORY USAGE {usage} vs {per_key}"
    );
    // Freed again.
    let _: () = q(&mut con, &["FLUSHALL"]);
    let freed = info(&mut con, "used_memory");
    assert!(
        freed < before + (1 << 20),
        "{freed} after FLUSHALL, {before} before"
    );
}

#[test]
fn memory_usage_is_within_a_tenth_of_redis_for_strings_and_lists() {
    let mut figures = Vec::new();
    for kind in [NodeKind::Redis, NodeKind::Ember] {
        let node = NodeProcess::start(kind);
        let mut con = connect(node.addr());
        let _: () = q(&mut con, &["SET", "s1k", &"a".repeat(1000)]);
        let _: () = q(&mut con, &["SET", "s10k", &"b".repeat(10_000)]);
        let _: () = q(&mut con, &["SET", "s100k", &"c".repeat(100_000)]);
        let mut push = redis::cmd("RPUSH");
        push.arg("list");
        for i in 0..1000 {
            push.arg(format!("element-{i}"));
        }
        let _: i64 = push.query(&mut con).expect("RPUSH");
        let mut big = redis::cmd("RPUSH");
        big.arg("biglist");
        for i in 0..200 {
            big.arg(format!("{i:0500}"));
        }
        let _: i64 = big.query(&mut con).expect("RPUSH");
        let mut got = Vec::new();
        for key in ["s1k", "s10k", "s100k", "list", "biglist"] {
            let usage: i64 = q(&mut con, &["MEMORY", "USAGE", key, "SAMPLES", "0"]);
            got.push((key, usage));
        }
        figures.push(got);
    }
    for ((key, redis), (_, ember)) in figures[0].iter().zip(&figures[1]) {
        let ratio = *ember as f64 / *redis as f64;
        assert!(
            (0.9..=1.1).contains(&ratio),
            "{key}: Ember {ember}, Redis {redis}"
        );
    }
}

#[test]
fn lfu_counters_and_idle_times_follow_redis() {
    let mut freqs = Vec::new();
    for kind in [NodeKind::Redis, NodeKind::Ember] {
        let node = NodeProcess::start(kind);
        let mut con = connect(node.addr());
        let _: () = q(
            &mut con,
            &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"],
        );
        // With a log factor of 0 every access counts: deterministic.
        let _: () = q(&mut con, &["CONFIG", "SET", "lfu-log-factor", "0"]);
        let _: () = q(&mut con, &["SET", "k", "v"]);
        let fresh: i64 = q(&mut con, &["OBJECT", "FREQ", "k"]);
        for _ in 0..100 {
            let _: Option<String> = q(&mut con, &["GET", "k"]);
        }
        let used: i64 = q(&mut con, &["OBJECT", "FREQ", "k"]);
        // OBJECT IDLETIME is refused under LFU, OBJECT FREQ under LRU.
        let idle = redis::cmd("OBJECT")
            .arg("IDLETIME")
            .arg("k")
            .query::<i64>(&mut con)
            .is_err();
        let _: () = q(
            &mut con,
            &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
        );
        let freq_refused = redis::cmd("OBJECT")
            .arg("FREQ")
            .arg("k")
            .query::<i64>(&mut con)
            .is_err();
        freqs.push((fresh, used, idle, freq_refused));
    }
    assert_eq!(freqs[0], freqs[1]);
    assert_eq!(freqs[1], (5, 105, true, true));
}

#[test]
fn lru_eviction_keeps_recently_used_keys() {
    let maxmemory = format!("maxmemory {LIMIT}");
    let node = NodeProcess::start_with(
        NodeKind::Ember,
        &[&maxmemory, "maxmemory-policy allkeys-lru"],
    );
    let mut con = connect(node.addr());
    // Hot keys, used now; then cold keys restored as idle for a day,
    // until many have been evicted.
    let value = "h".repeat(400);
    assert!(set_batch(&mut con, "hot:", 0, 2000, &value, None).is_empty());
    let _: () = q(&mut con, &["SET", "template", &value]);
    let payload: Vec<u8> = q(&mut con, &["DUMP", "template"]);
    let started = Instant::now();
    let mut i = 0;
    while info(&mut con, "evicted_keys") < 20_000 {
        assert!(started.elapsed() < Duration::from_secs(120), "too slow");
        let mut pipe = redis::pipe();
        for _ in 0..1000 {
            pipe.cmd("RESTORE")
                .arg(format!("cold:{i:08}"))
                .arg(0)
                .arg(&payload)
                .arg("IDLETIME")
                .arg(86_400);
            i += 1;
        }
        let _: Vec<Value> = pipe.query(&mut con).expect("restores");
    }
    let mut exists = redis::cmd("EXISTS");
    for k in 0..2000 {
        exists.arg(format!("hot:{k:08}"));
    }
    let hot: i64 = exists.query(&mut con).expect("EXISTS");
    // A hot key goes only when every key sampled into the pool was hot.
    assert!(hot >= 1980, "{hot} of 2000 hot keys left");
}

#[test]
fn evictions_reach_replicas_as_deletes_and_replicas_do_not_evict() {
    let maxmemory = format!("maxmemory {LIMIT}");
    let master = NodeProcess::start_with(
        NodeKind::Ember,
        &[&maxmemory, "maxmemory-policy allkeys-lru"],
    );
    let replicaof = format!("replicaof {}", master.addr().replace(':', " "));
    // The replica's own limit is far lower: it must not act on it.
    let replica = NodeProcess::start_with(
        NodeKind::Ember,
        &[&replicaof, "maxmemory 8mb", "maxmemory-policy allkeys-lru"],
    );
    let mut m = connect(master.addr());
    let mut r = connect(replica.addr());
    let started = Instant::now();
    while info_text(&mut r, "master_link_status") != "up" {
        assert!(started.elapsed() < Duration::from_secs(30), "no link");
        std::thread::sleep(Duration::from_millis(20));
    }
    let value = "r".repeat(400);
    for b in 0..40 {
        assert!(set_batch(&mut m, "key:", b * 1000, 1000, &value, None).is_empty());
    }
    assert!(info(&mut m, "evicted_keys") > 0);
    // The master may still be evicting in the background: compare once
    // the replica has caught up with a master that stood still meanwhile.
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "replica behind"
        );
        // The master's count at an offset: it stood still while it was
        // read (it may evict in the background, and lazily freed memory
        // may keep it over the limit for a moment).
        let offset = info(&mut m, "master_repl_offset");
        let master_keys: i64 = q(&mut m, &["DBSIZE"]);
        if info(&mut m, "master_repl_offset") != offset {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        if info(&mut r, "slave_repl_offset") >= offset {
            let replica_keys: i64 = q(&mut r, &["DBSIZE"]);
            if info(&mut m, "master_repl_offset") == offset {
                assert_eq!(replica_keys, master_keys);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(info(&mut r, "evicted_keys"), 0);
}

#[test]
fn memory_stats_doctor_and_purge_answer() {
    let node = NodeProcess::start(NodeKind::Ember);
    let mut con = connect(node.addr());
    let _: () = q(&mut con, &["SET", "k", "v"]);
    let stats: Vec<Value> = q(&mut con, &["MEMORY", "STATS"]);
    let names: Vec<String> = stats
        .iter()
        .step_by(2)
        .filter_map(|v| match v {
            Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .collect();
    for name in [
        "peak.allocated",
        "total.allocated",
        "db.0",
        "keys.count",
        "fragmentation",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    let doctor: String = q(&mut con, &["MEMORY", "DOCTOR"]);
    assert!(doctor.starts_with("Hi Sam"), "{doctor}");
    let _: () = q(&mut con, &["MEMORY", "PURGE"]);
    let allocator: String = q(&mut con, &["INFO", "memory"]);
    assert!(allocator.contains("mem_allocator:jemalloc"), "{allocator}");
}

#[test]
fn a_key_costs_its_slot_and_a_long_key_its_own_allocation_too() {
    let node = NodeProcess::start(NodeKind::Ember);
    let mut con = connect(node.addr());
    // Databases 1 to 15 are made in a shard when first used: before, the
    // 16,384 empty databases took 1.8 MB (3.6 MB at 200 bytes each);
    // Redis starts at about 0.9 MB.
    let startup = info(&mut con, "used_memory_startup");
    assert!(startup < 600_000, "used_memory_startup {startup}");
    // A key of up to 22 bytes is inside its 64-byte slot (80 with its
    // share of the table); one byte more, and it takes 32 of its own.
    let short = "k".repeat(22);
    let long = "k".repeat(23);
    let _: () = q(&mut con, &["SET", &short, "v"]);
    let _: () = q(&mut con, &["SET", &long, "v", "EX", "1000"]);
    let usage = |con: &mut Connection, key: &str| -> i64 { q(con, &["MEMORY", "USAGE", key]) };
    assert_eq!(usage(&mut con, &short), 80);
    assert_eq!(usage(&mut con, &long), 80 + 32);
    // MEMORY STATS: each key's slot, and the key with a deadline's place
    // in the expiry cycle's sample.
    let stats: Vec<Value> = q(&mut con, &["MEMORY", "STATS"]);
    let db0 = stats
        .chunks(2)
        .find(|kv| matches!(&kv[0], Value::BulkString(b) if b == b"db.0"))
        .map(|kv| kv[1].clone())
        .expect("db.0 in MEMORY STATS");
    let Value::Array(fields) = db0 else {
        panic!("db.0 is {db0:?}");
    };
    let field = |name: &str| {
        fields
            .chunks(2)
            .find(|kv| matches!(&kv[0], Value::BulkString(b) if b == name.as_bytes()))
            .map(|kv| kv[1].clone())
    };
    assert_eq!(field("overhead.hashtable.main"), Some(Value::Int(2 * 80)));
    assert_eq!(field("overhead.hashtable.expires"), Some(Value::Int(40)));
}

#[test]
fn evictions_raise_the_evicted_event() {
    let maxmemory = format!("maxmemory {LIMIT}");
    let node = NodeProcess::start_with(
        NodeKind::Ember,
        &[
            &maxmemory,
            "maxmemory-policy allkeys-random",
            "notify-keyspace-events Ee",
        ],
    );
    let mut sub = connect(node.addr());
    let mut pubsub = sub.as_pubsub();
    pubsub
        .subscribe("__keyevent@0__:evicted")
        .expect("subscribe");
    pubsub
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut con = connect(node.addr());
    let value = "e".repeat(400);
    for b in 0..40 {
        assert!(set_batch(&mut con, "key:", b * 1000, 1000, &value, None).is_empty());
        if info(&mut con, "evicted_keys") > 0 {
            break;
        }
    }
    let msg = pubsub.get_message().expect("an evicted event");
    let key: String = msg.get_payload().expect("a key");
    assert!(key.starts_with("key:"), "{key}");
    assert_eq!(msg.get_channel_name(), "__keyevent@0__:evicted");
}

/// Eviction's settings: defaults, bounds and errors as redis-server has
/// them.
#[test]
fn eviction_settings_match_redis() {
    let requests: &[&[&[u8]]] = &[
        &[b"CONFIG", b"GET", b"maxmemory-samples"],
        &[b"CONFIG", b"GET", b"maxmemory-eviction-tenacity"],
        &[b"CONFIG", b"GET", b"lfu-log-factor"],
        &[b"CONFIG", b"GET", b"lfu-decay-time"],
        &[b"CONFIG", b"GET", b"replica-ignore-maxmemory"],
        &[b"CONFIG", b"SET", b"maxmemory-samples", b"0"],
        &[b"CONFIG", b"SET", b"maxmemory-samples", b"65"],
        &[b"CONFIG", b"SET", b"maxmemory-eviction-tenacity", b"101"],
        &[b"CONFIG", b"SET", b"lfu-log-factor", b"-1"],
        &[b"CONFIG", b"SET", b"maxmemory-policy", b"allkeys-lru"],
        &[b"CONFIG", b"SET", b"maxmemory-policy", b"lru"],
        &[b"CONFIG", b"GET", b"maxmemory-policy"],
        &[b"CONFIG", b"SET", b"slave-ignore-maxmemory", b"no"],
        &[b"CONFIG", b"GET", b"replica-ignore-maxmemory"],
        &[b"MEMORY", b"USAGE", b"missing"],
        &[b"MEMORY", b"USAGE", b"missing", b"SAMPLES", b"-1"],
        &[b"MEMORY", b"NOPE"],
    ];
    let mut replies = Vec::new();
    for kind in [NodeKind::Redis, NodeKind::Ember] {
        let node = NodeProcess::start(kind);
        let mut raw = ember_tests::connect(node.addr().parse().expect("address"));
        let got: Vec<_> = requests
            .iter()
            .map(|r| ember_tests::call(&mut raw, r))
            .collect();
        replies.push(got);
    }
    for (i, (redis, ember)) in replies[0].iter().zip(&replies[1]).enumerate() {
        assert_eq!(redis, ember, "{:?}", requests[i]);
    }
}

/// Writes `n` keys `prefix{i}` of 400 bytes in batches of 1,000; no error.
fn fill(con: &mut Connection, prefix: &str, n: usize) {
    let value = "s".repeat(400);
    for from in (0..n).step_by(1000) {
        let errors = set_batch(con, prefix, from, 1000.min(n - from), &value, None);
        assert!(errors.is_empty(), "{errors:?}");
    }
}

/// How many of `hot:0..n` exist.
fn hot_left(con: &mut Connection, n: usize) -> i64 {
    let mut exists = redis::cmd("EXISTS");
    for k in 0..n {
        exists.arg(format!("hot:{k:08}"));
    }
    exists.query(con).expect("EXISTS")
}

#[test]
fn s3fifo_keeps_a_hot_set_through_a_scan_that_lru_lets_evict_it() {
    // 2,000 hot keys, each read twice, then a scan of 40,000 keys written
    // once (about 22 MB, where 12 MB hold some 23,000 keys). LRU sees the
    // hot keys as the oldest and lets the scan push them out; S3-FIFO
    // moves them to its main queue, as they were read, and evicts the
    // scanned keys from its small queue.
    let mut left = Vec::new();
    for policy in ["allkeys-lru", "allkeys-s3fifo"] {
        let maxmemory = format!("maxmemory {LIMIT}");
        let policy_line = format!("maxmemory-policy {policy}");
        let node = NodeProcess::start_with(NodeKind::Ember, &[&maxmemory, &policy_line]);
        let mut con = connect(node.addr());
        fill(&mut con, "hot:", 2000);
        for _ in 0..2 {
            let mut pipe = redis::pipe();
            for k in 0..2000 {
                pipe.cmd("GET").arg(format!("hot:{k:08}"));
            }
            let _: Vec<Value> = pipe.query(&mut con).expect("GETs");
        }
        fill(&mut con, "scan:", 40_000);
        assert!(info(&mut con, "evicted_keys") > 15_000, "{policy}");
        left.push(hot_left(&mut con, 2000));
    }
    assert!(left[0] < 1800, "LRU kept {} of 2000 hot keys", left[0]);
    assert!(left[1] >= 1980, "S3-FIFO kept {} of 2000 hot keys", left[1]);
}

#[test]
fn s3fifo_is_set_and_read_by_config_and_takes_over_a_full_keyspace() {
    let maxmemory = format!("maxmemory {LIMIT}");
    let node = NodeProcess::start_with(NodeKind::Ember, &[&maxmemory]);
    let mut con = connect(node.addr());
    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-s3fifo"],
    );
    let got: Vec<String> = q(&mut con, &["CONFIG", "GET", "maxmemory-policy"]);
    assert_eq!(got, ["maxmemory-policy", "allkeys-s3fifo"]);
    assert_eq!(info_text(&mut con, "maxmemory_policy"), "allkeys-s3fifo");
    // Not an LFU policy: OBJECT FREQ refuses, as under LRU.
    let _: () = q(&mut con, &["SET", "k", "v"]);
    let freq: redis::RedisResult<i64> = redis::cmd("OBJECT").arg("FREQ").arg("k").query(&mut con);
    assert!(freq.is_err(), "{freq:?}");
    // Keys written under noeviction up to the limit, then the policy
    // switched: the keys already there join the queues, and writes go on.
    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "noeviction"],
    );
    let value = "n".repeat(400);
    let mut written = 0;
    loop {
        let errors = set_batch(&mut con, "old:", written, 1000, &value, None);
        if !errors.is_empty() {
            assert!(errors[0].starts_with("OOM"), "{errors:?}");
            break;
        }
        written += 1000;
        assert!(written < 100_000, "noeviction never refused");
    }
    let old: i64 = q(&mut con, &["DBSIZE"]);
    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-s3fifo"],
    );
    // Half as many new keys again as the old that fit: the queues are
    // per shard, and a shard that took fewer new keys than it had old
    // ones keeps some of them (with as many new keys as old, about a
    // tenth of the old keys stay).
    let new = old * 3 / 2;
    fill(&mut con, "new:", new as usize);
    let used = info(&mut con, "used_memory");
    assert!(used <= LIMIT + SLACK, "used_memory {used}");
    let (evicted, keys) = (0..1000)
        .find_map(|_| {
            let evicted = info(&mut con, "evicted_keys");
            let keys: i64 = q(&mut con, &["DBSIZE"]);
            (info(&mut con, "evicted_keys") == evicted).then_some((evicted, keys))
        })
        .expect("eviction settles");
    assert_eq!(keys + evicted, old + new);
    // Old keys, never read, went first.
    let mut exists = redis::cmd("EXISTS");
    for k in 0..old {
        exists.arg(format!("old:{k:08}"));
    }
    let old_left: i64 = exists.query(&mut con).expect("EXISTS");
    assert!(old_left < old / 10, "{old_left} of {old} old keys left");
}

/// Redis's suite (`unit/maxmemory`) sets `maxmemory` 100 KB above what is
/// used and fills another database than 0 until it is reached: keys that
/// were the first of their shard in that database must give its room
/// back when evicted, or the policy evicts every key and still refuses
/// writes. FLUSHALL gives it back too.
#[test]
fn keys_of_another_database_give_their_room_back_when_evicted() {
    let node = NodeProcess::start(NodeKind::Ember);
    let mut con = connect(node.addr());
    let _: () = q(&mut con, &["SELECT", "9"]);
    let baseline = info(&mut con, "used_memory");
    for policy in ["allkeys-random", "allkeys-lru", "volatile-ttl"] {
        let _: () = q(&mut con, &["FLUSHALL"]);
        let used = info(&mut con, "used_memory");
        assert!(
            used < baseline + 64 * 1024,
            "{policy}: {used} after FLUSHALL, {baseline} before"
        );
        let limit = used + 100 * 1024;
        let _: () = q(
            &mut con,
            &["CONFIG", "SET", "maxmemory", &limit.to_string()],
        );
        let _: () = q(&mut con, &["CONFIG", "SET", "maxmemory-policy", policy]);
        let mut keys = 0;
        while info(&mut con, "used_memory") + 4096 <= limit {
            let _: () = q(&mut con, &["SETEX", &format!("first:{keys}"), "10000", "x"]);
            keys += 1;
        }
        assert!(keys > 10, "{policy}: {keys} keys");
        for k in 0..keys {
            let set: redis::RedisResult<()> = redis::cmd("SETEX")
                .arg(format!("second:{k}"))
                .arg(10000)
                .arg("x")
                .query(&mut con);
            assert!(set.is_ok(), "{policy}: {set:?}");
        }
        let used = info(&mut con, "used_memory");
        assert!(
            used < limit + 16 * 1024,
            "{policy}: used_memory {used}, limit {limit}"
        );
        let _: () = q(&mut con, &["CONFIG", "SET", "maxmemory", "0"]);
    }
}

/// OBJECT REFCOUNT and DEBUG OBJECT report Redis's shared integers (0 to
/// 9999, except under `maxmemory` with an LRU or LFU policy) as Redis
/// does.
#[test]
fn shared_integer_refcounts_match_redis() {
    let run = |kind| {
        let node = NodeProcess::start(kind);
        let mut con = connect(node.addr());
        let mut out = Vec::new();
        for (maxmemory, policy) in [
            ("0", "noeviction"),
            ("1gb", "allkeys-random"),
            ("1gb", "allkeys-lru"),
            ("1gb", "volatile-lfu"),
            ("0", "allkeys-lru"),
        ] {
            let _: () = q(&mut con, &["CONFIG", "SET", "maxmemory", maxmemory]);
            let _: () = q(&mut con, &["CONFIG", "SET", "maxmemory-policy", policy]);
            for v in ["0", "1", "9999", "10000", "-1", "007", "abc"] {
                let _: () = q(&mut con, &["SET", "k", v]);
                let n: i64 = q(&mut con, &["OBJECT", "REFCOUNT", "k"]);
                out.push(format!("{maxmemory} {policy} {v}: {n}"));
            }
            let _: () = q(&mut con, &["DEL", "n"]);
            let _: i64 = q(&mut con, &["INCR", "n"]);
            let n: i64 = q(&mut con, &["OBJECT", "REFCOUNT", "n"]);
            out.push(format!("{maxmemory} {policy} INCR: {n}"));
            let _: i64 = q(&mut con, &["RPUSH", "l", "1"]);
            let n: i64 = q(&mut con, &["OBJECT", "REFCOUNT", "l"]);
            out.push(format!("{maxmemory} {policy} list: {n}"));
        }
        out
    };
    let ember = run(NodeKind::Ember);
    assert!(
        ember.contains(&"0 noeviction 1: 2147483647".to_string()),
        "{ember:?}"
    );
    assert_eq!(ember, run(NodeKind::Redis));
}

/// A replica that stopped reading: its stream piles up in the master's
/// replication buffer, which `maxmemory` does not count past the
/// backlog's size (Redis's `mem_not_counted_for_evict`), so no key is
/// evicted for it; INFO shows it as the replica's. Killing the replica
/// gives it back.
#[test]
fn a_stalled_replicas_buffer_is_not_counted_for_eviction() {
    use std::io::Write;
    let master = NodeProcess::start_with(
        NodeKind::Ember,
        &["maxmemory-policy allkeys-random", "repl-backlog-size 16kb"],
    );
    let mut m = connect(master.addr());
    let big = "b".repeat(10_000);
    for k in 0..100 {
        let _: () = q(&mut m, &["SET", &format!("key:{k}"), &big]);
    }
    // A replica that takes its RDB and then reads nothing: a small
    // receive buffer, so the stream piles up at the master.
    let addr: std::net::SocketAddr = master.addr().parse().expect("address");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut replica = rt
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.set_recv_buffer_size(4096)?;
            socket.connect(addr).await?.into_std()
        })
        .expect("connect");
    replica.set_nonblocking(false).expect("blocking");
    replica
        .write_all(b"REPLCONF listening-port 1\r\nREPLCONF capa psync2\r\nPSYNC ? -1\r\n")
        .expect("handshake");
    let started = Instant::now();
    while info(&mut m, "connected_slaves") != 1 {
        assert!(started.elapsed() < Duration::from_secs(30), "no replica");
        std::thread::sleep(Duration::from_millis(20));
    }
    let used = info(&mut m, "used_memory") - info(&mut m, "mem_not_counted_for_evict");
    // Room for the commands' own buffers, a sixteenth of the stream.
    let limit = used + 1024 * 1024;
    let _: () = q(&mut m, &["CONFIG", "SET", "maxmemory", &limit.to_string()]);
    // 16 MB of stream, far past what the sockets hold.
    let payload = "p".repeat(8 * 1024);
    for _ in 0..2048 {
        let _: i64 = q(&mut m, &["SETRANGE", "key:0", "0", &payload]);
    }
    let keys: i64 = q(&mut m, &["DBSIZE"]);
    assert_eq!(keys, 100);
    assert_eq!(info(&mut m, "evicted_keys"), 0);
    let not_counted = info(&mut m, "mem_not_counted_for_evict");
    let replicas = info(&mut m, "mem_clients_slaves");
    let buffers = info(&mut m, "mem_total_replication_buffers");
    assert!(
        not_counted > 4 << 20,
        "mem_not_counted_for_evict {not_counted}"
    );
    assert!(replicas > 4 << 20, "mem_clients_slaves {replicas}");
    assert!(buffers >= not_counted && buffers >= replicas, "{buffers}");
    // What is counted moved by the backlog's size, not by the stream.
    let counted = info(&mut m, "used_memory") - not_counted;
    assert!(counted < limit, "counted {counted}, limit {limit}");
    let killed: i64 = q(&mut m, &["CLIENT", "KILL", "TYPE", "replica"]);
    assert_eq!(killed, 1);
    let started = Instant::now();
    while info(&mut m, "connected_slaves") != 0 || info(&mut m, "mem_clients_slaves") != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "replica still counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let keys: i64 = q(&mut m, &["DBSIZE"]);
    assert_eq!(keys, 100);
    drop(replica);
}

/// Ten RESP3 clients track 300 keys and read nothing; `maxmemory` set
/// 40 KB under what is used evicts about 40 KB of keys, as Redis does
/// (its suite's "client tracking don't cause eviction feedback loop"):
/// not every key, as it would if the invalidations the evictions queue
/// counted against the limit before their clients could take them.
#[test]
fn tracking_invalidations_do_not_feed_eviction() {
    use std::io::{Read, Write};
    let node = NodeProcess::start_with(
        NodeKind::Ember,
        &[
            "maxmemory-policy allkeys-lru",
            "maxmemory-eviction-tenacity 100",
        ],
    );
    let mut con = connect(node.addr());
    let read_reply = |s: &mut std::net::TcpStream| {
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while !got.ends_with(b"\r\n") {
            let n = s.read(&mut buf).expect("read");
            assert!(n > 0, "closed");
            got.extend_from_slice(&buf[..n]);
        }
    };
    let mut trackers: Vec<std::net::TcpStream> = (0..10)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(node.addr()).expect("connect");
            s.write_all(b"HELLO 3\r\n").expect("HELLO");
            std::thread::sleep(Duration::from_millis(5));
            read_reply(&mut s);
            s.write_all(b"CLIENT TRACKING on\r\n").expect("TRACKING");
            read_reply(&mut s);
            s
        })
        .collect();
    for j in 0..300 {
        let key = format!("{j}{}", "x".repeat(1000));
        let _: () = q(&mut con, &["SET", &key, "x"]);
        let get = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
        for s in &mut trackers {
            s.write_all(get.as_bytes()).expect("GET");
        }
        for s in &mut trackers {
            read_reply(s);
        }
    }
    let used = info(&mut con, "used_memory");
    let _: () = q(
        &mut con,
        &["CONFIG", "SET", "maxmemory", &(used - 40_000).to_string()],
    );
    let evicted = info(&mut con, "evicted_keys");
    let keys: i64 = q(&mut con, &["DBSIZE"]);
    // Redis's suite allows 10 to 50 (Redis evicts about 36, Ember about
    // 45: what it counts of the replies between the two commands); the
    // feedback loop evicted all 300.
    assert!((10..=100).contains(&evicted), "evicted {evicted}");
    assert!((200..=300).contains(&keys), "{keys} keys left");
    // The invalidations were sent.
    let mut buf = [0u8; 4096];
    let n = trackers[0].read(&mut buf).expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("invalidate"));
}

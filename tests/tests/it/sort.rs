//! SORT and SORT_RO against a real `redis-server` 7.0, reply by reply:
//! lists and sets (intsets, and string sets whose table order differs from
//! Redis's, compared as multisets where no order is asked for), numeric and
//! ALPHA orders, DESC, LIMIT's clamping, BY patterns (strings, hash fields,
//! missing weights, constant patterns), GET patterns (`#`, strings, hash
//! fields, missing keys), STORE (a list, the destination deleted when the
//! result is empty), and the errors.

use bytes::BytesMut;
use ember_tests::{EmberServer, RedisServer, call, connect};
use resp::Frame;

fn frame(reply: &[u8]) -> Frame {
    let mut buf = BytesMut::from(reply);
    resp::decode(&mut buf).expect("valid").expect("whole")
}

fn multiset(reply: &[u8]) -> Vec<Vec<u8>> {
    let mut items: Vec<Vec<u8>> = match frame(reply) {
        Frame::Array(items) => items
            .into_iter()
            .map(|f| {
                let mut out = BytesMut::new();
                f.encode(&mut out);
                out.to_vec()
            })
            .collect(),
        other => panic!("{other:?}"),
    };
    items.sort();
    items
}

#[test]
fn sort_matches_redis() {
    let redis = RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    let mut r = connect(redis.addr());
    let mut e = connect(ember.addr());
    let setup: &[&[&str]] = &[
        &["RPUSH", "nums", "3", "1", "2", "10", "-1.5", "1e2", "2"],
        &["RPUSH", "words", "pear", "apple", "fig", "apple", ""],
        &["RPUSH", "mixed", "1", "x", "2"],
        &["SADD", "iset", "5", "3", "9", "1"],
        &["SADD", "sset", "b", "a", "c", "d"],
        &[
            "MSET", "w_b", "3", "w_a", "1", "w_c", "2", "w_3", "30", "w_1", "10", "w_9", "0",
        ],
        &["MSET", "name_a", "Ada", "name_b", "Bob", "name_5", "five"],
        &["HSET", "h_a", "age", "37", "city", "Oslo"],
        &["HSET", "h_b", "age", "12"],
        &["HSET", "h_c", "age", "x"],
        &["SET", "str", "v"],
        &["RPUSH", "old", "stale"],
        &[
            "ZADD", "zs", "3", "c", "1", "a", "2", "b", "5", "e", "4", "d",
        ],
        &["EXPIRE", "old", "1000"],
    ];
    for cmd in setup {
        let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
        assert_eq!(call(&mut e, &args), call(&mut r, &args), "{cmd:?}");
    }
    // (case, compared as a multiset: a set's own order, no sort asked for)
    let cases: &[(&[&str], bool)] = &[
        (&["SORT", "nums"], false),
        (&["SORT", "nums", "DESC"], false),
        (&["SORT", "nums", "LIMIT", "1", "3"], false),
        (&["SORT", "nums", "LIMIT", "-5", "2"], false),
        (&["SORT", "nums", "LIMIT", "5", "-1"], false),
        (&["SORT", "nums", "LIMIT", "100", "3"], false),
        (&["SORT", "nums", "LIMIT", "0", "0"], false),
        (&["SORT", "nums", "ALPHA"], false),
        (&["SORT", "words"], false),
        (&["SORT", "words", "ALPHA"], false),
        (
            &["SORT", "words", "ALPHA", "DESC", "LIMIT", "1", "2"],
            false,
        ),
        (&["SORT", "mixed"], false),
        (&["SORT", "iset"], false),
        (&["SORT", "iset", "DESC"], false),
        (&["SORT", "sset", "ALPHA"], false),
        (&["SORT", "sset", "ALPHA", "DESC"], false),
        (&["SORT", "sset"], false),
        (&["SORT", "sset", "BY", "nosort"], true),
        (&["SORT", "iset", "BY", "nosort"], false),
        (&["SORT", "nums", "BY", "nosort"], false),
        (
            &["SORT", "nums", "BY", "nosort", "DESC", "LIMIT", "1", "3"],
            false,
        ),
        (&["SORT", "sset", "BY", "w_*"], false),
        (&["SORT", "sset", "BY", "w_*", "DESC"], false),
        (&["SORT", "sset", "BY", "w_*", "ALPHA"], false),
        (&["SORT", "iset", "BY", "w_*"], false),
        (
            &[
                "SORT", "iset", "BY", "w_*", "GET", "#", "GET", "name_*", "GET", "w_*",
            ],
            false,
        ),
        (
            &[
                "SORT",
                "sset",
                "BY",
                "h_*->age",
                "GET",
                "h_*->city",
                "GET",
                "#",
            ],
            false,
        ),
        (&["SORT", "sset", "BY", "w_*", "GET", "nostar"], false),
        (
            &[
                "SORT", "sset", "BY", "w_*", "LIMIT", "1", "2", "GET", "name_*",
            ],
            false,
        ),
        // Every weight missing: all equal, so the order is each table's own.
        (&["SORT", "sset", "BY", "h_*->", "ALPHA"], true),
        (&["SORT", "zs"], false),
        (&["SORT", "zs", "ALPHA", "DESC"], false),
        (&["SORT", "zs", "BY", "nosort"], false),
        (&["SORT", "zs", "BY", "nosort", "DESC"], false),
        (&["SORT", "zs", "BY", "nosort", "LIMIT", "1", "2"], false),
        (
            &["SORT", "zs", "BY", "nosort", "DESC", "LIMIT", "1", "2"],
            false,
        ),
        (&["SORT", "zs", "BY", "nosort", "LIMIT", "9", "2"], false),
        (
            &["SORT", "zs", "BY", "w_*", "ALPHA", "STORE", "zdest"],
            false,
        ),
        (&["LRANGE", "zdest", "0", "-1"], false),
        (&["SORT", "missing"], false),
        (&["SORT", "missing", "BY", "w_*", "GET", "#"], false),
        (&["SORT_RO", "nums", "DESC"], false),
        (&["SORT", "nums", "STORE", "dest"], false),
        (&["LRANGE", "dest", "0", "-1"], false),
        (&["SORT", "sset", "BY", "nosort", "STORE", "dest2"], false),
        (&["LRANGE", "dest2", "0", "-1"], false),
        (
            &[
                "SORT", "iset", "BY", "w_*", "GET", "name_*", "STORE", "dest3",
            ],
            false,
        ),
        (&["LRANGE", "dest3", "0", "-1"], false),
        (&["SORT", "missing", "STORE", "dest"], false),
        (&["EXISTS", "dest"], false),
        (&["SORT", "nums", "STORE", "old"], false),
        (&["TTL", "old"], false),
        // The keys COMMAND GETKEYS (and a transaction) finds.
        (
            &["COMMAND", "GETKEYS", "SORT", "abc", "STORE", "def"],
            false,
        ),
        (
            &[
                "COMMAND", "GETKEYS", "SORT", "abc", "STORE", "x", "store", "y", "STORE", "def",
            ],
            false,
        ),
        (
            &[
                "COMMAND", "GETKEYS", "SORT", "abc", "LIMIT", "store", "x", "BY", "store", "GET",
                "s",
            ],
            false,
        ),
        (&["COMMAND", "GETKEYS", "SORT", "abc", "STORE"], false),
        (
            &["COMMAND", "GETKEYS", "LMPOP", "2", "a", "b", "LEFT"],
            false,
        ),
        (
            &[
                "COMMAND",
                "GETKEYS",
                "SINTERCARD",
                "2",
                "a",
                "b",
                "LIMIT",
                "1",
            ],
            false,
        ),
        (&["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"], false),
        (&["COMMAND", "GETKEYS", "GET"], false),
        (&["COMMAND", "GETKEYS", "PING"], false),
        (&["COMMAND", "GETKEYS", "NOSUCH", "x"], false),
        (
            &[
                "COMMAND", "GETKEYS", "MIGRATE", "h", "1", "", "0", "5", "KEYS", "a", "b",
            ],
            false,
        ),
        // Errors.
        (&["SORT", "str"], false),
        (&["SORT", "words"], false),
        (&["SORT", "sset", "BY", "h_*->age"], false),
        (&["SORT", "nums", "LIMIT", "1"], false),
        (&["SORT", "nums", "LIMIT", "x", "1"], false),
        (&["SORT", "nums", "BOGUS"], false),
        (&["SORT", "nums", "GET"], false),
        (&["SORT_RO", "nums", "STORE", "d"], false),
        (&["SORT"], false),
        (&["SORT_RO"], false),
    ];
    for (case, as_multiset) in cases {
        let args: Vec<&[u8]> = case.iter().map(|a| a.as_bytes()).collect();
        let (want, got) = (call(&mut r, &args), call(&mut e, &args));
        if *as_multiset {
            assert_eq!(multiset(&got), multiset(&want), "{case:?}");
        } else {
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
                "{case:?}"
            );
        }
    }
}

/// SORT inside MULTI with BY and GET patterns on keys of other shards: the
/// transaction holds every shard, and the answers are Redis's.
#[test]
fn sort_with_patterns_inside_a_transaction() {
    let redis = RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    let mut answers = Vec::new();
    for addr in [redis.addr(), ember.addr()] {
        let mut c = connect(addr);
        let script: &[&[&str]] = &[
            &["SADD", "ids", "1", "2", "3"],
            &["MSET", "rank_1", "30", "rank_2", "10", "rank_3", "20"],
            &["MULTI"],
            &["SORT", "ids", "BY", "rank_*", "GET", "rank_*"],
            &["SORT", "ids", "BY", "rank_*", "STORE", "out"],
            &["LRANGE", "out", "0", "-1"],
            &["EXEC"],
        ];
        let mut got = Vec::new();
        for cmd in script {
            let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
            got.push(call(&mut c, &args));
        }
        answers.push(got);
    }
    assert_eq!(answers[1], answers[0]);
}

//! Client-side caching: the same CLIENT TRACKING sequences against
//! redis-server and Ember, frames compared byte for byte (RESP3 pushes on
//! the tracking connection, `__redis__:invalidate` messages on a RESP2
//! redirect target, the errors and TRACKINGINFO replies); redis-py's
//! tracking helpers and its RESP3 invalidation handler.

use std::net::SocketAddr;

use ember_tests::{EmberServer, RedisServer};

use crate::pubsub::{Conn, show};
use crate::python::run_py;

/// One step: on connection `conn` (0: tracking, RESP3; 1: writer; 2:
/// redirect target, RESP2 subscriber; 3: tracking, RESP2), send `args`
/// (`$R` stands for connection 2's id; `|` separates the commands of a
/// pipeline) and read `frames` frames.
type Step = (usize, &'static [&'static str], usize);

fn run(addr: SocketAddr, steps: &[Step]) -> Vec<String> {
    let mut conns: Vec<Conn> = (0..4).map(|_| Conn::new(addr)).collect();
    conns[1].call(&["FLUSHALL"], 1);
    conns[0].call(&["HELLO", "3"], 1);
    let id = show(&conns[2].call(&["CLIENT", "ID"], 1));
    let id = id.trim_start_matches(':').trim_end().to_string();
    conns[2].call(&["SUBSCRIBE", "__redis__:invalidate"], 1);
    steps
        .iter()
        .map(|&(c, args, frames)| {
            let args: Vec<&str> = args
                .iter()
                .map(|&a| if a == "$R" { id.as_str() } else { a })
                .collect();
            // `|` separates the commands of a pipeline, sent in one write.
            let got = if args.contains(&"|") {
                let commands: Vec<&[&str]> = args.split(|a| *a == "|").collect();
                conns[c].send_many(&commands);
                conns[c].call(&[], frames)
            } else {
                conns[c].call(&args, frames)
            };
            // The redirect id differs between the servers: CLIENT GETREDIR
            // and TRACKINGINFO's redirect name it (only those: another
            // reply may be the same number, APPEND's length say).
            let got = show(&got).replace(&format!("redirect\r\n:{id}\r\n"), "redirect\r\n:$R\r\n");
            let getredir = args.len() == 2
                && args[0].eq_ignore_ascii_case("client")
                && args[1].eq_ignore_ascii_case("getredir");
            if getredir && got == format!(":{id}\r\n") {
                ":$R\r\n".to_string()
            } else {
                got
            }
        })
        .collect()
}

fn same(steps: &[Step]) {
    let (redis, ember) = (RedisServer::start(&[]), EmberServer::start(&[]));
    let want = run(redis.addr(), steps);
    let got = run(ember.addr(), steps);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "step {i}: {:?}", steps[i]);
    }
}

#[test]
fn default_mode_invalidations_match_redis() {
    same(&[
        (0, &["CLIENT", "TRACKING", "on"], 1),
        (0, &["GET", "k"], 1),
        (0, &["MGET", "k", "j"], 1),
        (1, &["SET", "k", "1"], 1),
        (0, &[], 1),
        // Told once per read.
        (1, &["SET", "k", "2"], 1),
        (1, &["SET", "j", "2"], 1),
        (0, &[], 1),
        (0, &["GET", "k"], 1),
        (1, &["APPEND", "k", "x"], 1),
        (0, &[], 1),
        (0, &["GET", "k"], 1),
        (1, &["EXPIRE", "k", "100"], 1),
        (0, &[], 1),
        (0, &["GET", "k"], 1),
        (1, &["DEL", "k"], 1),
        (0, &[], 1),
        // Its own writes too, after the reply.
        (0, &["GET", "own"], 1),
        (0, &["SET", "own", "x"], 2),
        (0, &["CLIENT", "TRACKINGINFO"], 1),
        (0, &["CLIENT", "GETREDIR"], 1),
        // NOLOOP: its own writes are not told.
        (0, &["CLIENT", "TRACKING", "on", "NOLOOP"], 1),
        (0, &["GET", "own"], 1),
        (0, &["SET", "own", "y"], 1),
        (0, &["GET", "own"], 1),
        (1, &["SET", "own", "z"], 1),
        (0, &[], 1),
        // A transaction's reads are remembered.
        (0, &["MULTI"], 1),
        (0, &["GET", "t1"], 1),
        (0, &["HGET", "t2", "f"], 1),
        (0, &["EXEC"], 1),
        (1, &["MSET", "t1", "a", "t2", "b"], 1),
        (0, &[], 2),
        // FLUSHALL: a null for everyone.
        (1, &["FLUSHALL"], 1),
        (0, &[], 1),
        (0, &["CLIENT", "TRACKING", "off"], 1),
        (0, &["CLIENT", "GETREDIR"], 1),
        (0, &["CLIENT", "TRACKINGINFO"], 1),
    ]);
}

#[test]
fn optin_optout_and_errors_match_redis() {
    same(&[
        (0, &["CLIENT", "CACHING", "yes"], 1),
        (0, &["CLIENT", "TRACKING", "on", "OPTIN"], 1),
        (0, &["GET", "a"], 1),
        (0, &["CLIENT", "CACHING", "yes"], 1),
        (0, &["CLIENT", "TRACKINGINFO"], 1),
        (0, &["GET", "b"], 1),
        (0, &["CLIENT", "TRACKINGINFO"], 1),
        (0, &["GET", "c"], 1),
        (1, &["MSET", "a", "1", "b", "1", "c", "1"], 1),
        (0, &[], 1),
        (0, &["CLIENT", "CACHING", "no"], 1),
        (0, &["CLIENT", "TRACKING", "on", "OPTOUT"], 1),
        (0, &["CLIENT", "TRACKING", "off"], 1),
        (0, &["CLIENT", "TRACKING", "on", "OPTOUT"], 1),
        (0, &["GET", "a"], 1),
        (0, &["CLIENT", "CACHING", "no"], 1),
        (0, &["GET", "b"], 1),
        (1, &["MSET", "a", "2", "b", "2"], 1),
        (0, &[], 1),
        (0, &["CLIENT", "TRACKING", "off"], 1),
        (0, &["CLIENT", "TRACKING", "on", "OPTIN", "OPTOUT"], 1),
        (0, &["CLIENT", "TRACKING", "on", "BCAST", "OPTIN"], 1),
        (0, &["CLIENT", "TRACKING", "on", "PREFIX", "a"], 1),
        (
            0,
            &[
                "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "ab", "PREFIX", "a",
            ],
            1,
        ),
        (0, &["CLIENT", "TRACKING", "on", "REDIRECT", "999999"], 1),
        (0, &["CLIENT", "TRACKING", "on", "REDIRECT", "x"], 1),
        (0, &["CLIENT", "TRACKING", "on", "NOPE"], 1),
        (0, &["CLIENT", "TRACKING", "maybe"], 1),
        (0, &["CLIENT", "CACHING", "maybe"], 1),
        (0, &["CLIENT", "TRACKING", "on", "BCAST"], 1),
        (0, &["CLIENT", "TRACKING", "on"], 1),
        (0, &["RESET"], 1),
        (0, &["CLIENT", "TRACKINGINFO"], 1),
    ]);
}

#[test]
fn bcast_and_resp2_redirection_match_redis() {
    same(&[
        (3, &["CLIENT", "TRACKING", "on", "REDIRECT", "$R"], 1),
        (3, &["GET", "k"], 1),
        (1, &["SET", "k", "1"], 1),
        (2, &[], 1),
        (3, &["CLIENT", "GETREDIR"], 1),
        (3, &["CLIENT", "TRACKING", "off"], 1),
        (
            3,
            &[
                "CLIENT", "TRACKING", "on", "BCAST", "REDIRECT", "$R", "PREFIX", "p:", "PREFIX",
                "q",
            ],
            1,
        ),
        (3, &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "p"], 1),
        (3, &["CLIENT", "TRACKINGINFO"], 1),
        // One message per prefix, once per command.
        (1, &["MSET", "p:1", "a", "q2", "b", "z", "c", "p:0", "d"], 1),
        (2, &[], 2),
        // A transaction's changes in one message per prefix.
        (1, &["MULTI"], 1),
        (1, &["SET", "p:9", "x"], 1),
        (1, &["SET", "p:3", "x"], 1),
        (1, &["SET", "qq", "x"], 1),
        (1, &["EXEC"], 1),
        (2, &[], 2),
        // A flush.
        (1, &["FLUSHDB"], 1),
        (2, &[], 1),
        // RESP3 BCAST on the empty prefix, NOLOOP.
        (0, &["CLIENT", "TRACKING", "on", "BCAST", "NOLOOP"], 1),
        (0, &["SET", "mine", "1"], 1),
        (1, &["SET", "theirs", "1"], 1),
        (0, &[], 1),
    ]);
}

/// A pipeline of writes: Redis gathers its BCAST invalidations and sends
/// them once, before its event loop sleeps, one array per prefix with
/// every key of the pipeline (sorted, each once); Ember once the batch
/// ends. A `PING` after them shows nothing more came.
#[test]
fn bcast_invalidations_of_a_pipeline_come_at_once_as_in_redis() {
    same(&[
        (
            0,
            &[
                "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "p:", "PREFIX", "q",
            ],
            1,
        ),
        (
            1,
            &[
                "SET", "p:2", "a", "|", "SET", "q1", "b", "|", "SET", "p:1", "c", "|", "DEL",
                "p:2", "|", "MSET", "p:3", "x", "q0", "y", "zz", "z", "|", "INCR", "p:0", "|",
                "SET", "other", "1", "|", "GET", "p:1",
            ],
            8,
        ),
        (0, &[], 2),
        (0, &["PING"], 1),
        // Its own pipeline: the replies, then the invalidations.
        (
            0,
            &["SET", "p:b", "1", "|", "SET", "p:a", "2", "|", "GET", "q"],
            4,
        ),
        (0, &["PING"], 1),
        // NOLOOP: it hears of the other's pipeline, not of its own.
        (0, &["CLIENT", "TRACKING", "off"], 1),
        (
            0,
            &[
                "CLIENT", "TRACKING", "on", "BCAST", "NOLOOP", "PREFIX", "p:",
            ],
            1,
        ),
        (0, &["SET", "p:mine", "1", "|", "SET", "p:both", "1"], 2),
        (1, &["SET", "p:theirs", "1", "|", "SET", "p:both", "2"], 2),
        (0, &[], 1),
        (0, &["SET", "p:both", "3"], 1),
        (0, &["PING"], 1),
        // A transaction inside a pipeline: one message still.
        (
            1,
            &[
                "SET", "p:t0", "1", "|", "MULTI", "|", "SET", "p:t1", "1", "|", "SET", "q:t", "1",
                "|", "EXEC", "|", "SET", "p:t2", "1",
            ],
            6,
        ),
        (0, &[], 1),
        (0, &["PING"], 1),
        // RESP2 redirection: one `__redis__:invalidate` message per prefix.
        (
            3,
            &[
                "CLIENT", "TRACKING", "on", "BCAST", "REDIRECT", "$R", "PREFIX", "r:",
            ],
            1,
        ),
        (
            1,
            &[
                "SET", "r:1", "a", "|", "SET", "r:0", "b", "|", "SET", "r:1", "c",
            ],
            3,
        ),
        (2, &[], 1),
        (2, &["PING"], 1),
    ]);
}

#[test]
fn redis_py_tracking_works_unchanged() {
    let redis = RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    if let Err(text) = run_py("redis_py_tracking.py", redis.addr(), 3) {
        panic!("the script fails against redis-server itself:\n{text}");
    }
    match run_py("redis_py_tracking.py", ember.addr(), 3) {
        Ok(text) => assert!(text.contains(": ok"), "{text}"),
        Err(text) => panic!("redis-py tracking against Ember:\n{text}"),
    }
}

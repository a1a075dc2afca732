//! redis-py, Python's Redis client, against Ember over RESP2 and RESP3.
//!
//! The checks live in `tests/py/redis_py_smoke.py`; the same script runs
//! against a real `redis-server` first, so a check that Redis itself fails
//! is a broken test, not an Ember bug. `scripts/test` installs redis-py.

use std::net::SocketAddr;
use std::process::Command;

use ember_tests::{EmberServer, RedisServer};

fn run_script(addr: SocketAddr, protocol: u8) -> Result<String, String> {
    run_py("redis_py_smoke.py", addr, protocol)
}

/// Runs `tests/py/<script> PORT PROTOCOL`: its output, `Err` if it failed.
pub(crate) fn run_py(script: &str, addr: SocketAddr, protocol: u8) -> Result<String, String> {
    let script = format!("{}/py/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(script)
        .arg(addr.port().to_string())
        .arg(protocol.to_string())
        .output()
        .expect("python3 runs (scripts/test installs redis-py)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

#[test]
fn redis_py_works_unchanged() {
    let redis = RedisServer::start(&[]);
    let ember = EmberServer::start(&[]);
    for protocol in [2, 3] {
        if let Err(text) = run_script(redis.addr(), protocol) {
            panic!("the script fails against redis-server itself (RESP{protocol}):\n{text}");
        }
        match run_script(ember.addr(), protocol) {
            Ok(text) => assert!(text.contains(": ok"), "{text}"),
            Err(text) => panic!("redis-py against Ember (RESP{protocol}):\n{text}"),
        }
    }
}

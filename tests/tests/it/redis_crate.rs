//! The `redis` crate as the tests use it: a connection to an address, a
//! command from its words with a panic that names it when it fails, and a
//! number from INFO.

use redis::Connection;

/// A connection to `addr` (`HOST:PORT`).
pub(crate) fn connect(addr: impl std::fmt::Display) -> Connection {
    let client = redis::Client::open(format!("redis://{addr}/")).expect("client");
    client.get_connection().expect("connection")
}

/// Runs `args` (the command's name first) and converts its reply.
pub(crate) fn q<T: redis::FromRedisValue>(con: &mut Connection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(con)
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

/// A numeric field of `INFO section`.
pub(crate) fn info(con: &mut Connection, section: &str, field: &str) -> i64 {
    let text: String = q(con, &["INFO", section]);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{field} is not a number"))
}

//! Whether a node's data can be believed: the states of self-healing.
//!
//! A node that restarted has lost what it held (or went back to an old
//! snapshot), and a node that missed writes is stale. Either still answers,
//! so the router must know not to take its answers at face value. Every node
//! carries a [`Trust`]: reads prefer [`Trust::Verified`] nodes, fall back on
//! the others only when no verified one is up, and there an empty answer
//! (a nil, `EXISTS` 0, `TTL` -2...) is not believed but tried on the next
//! replica.
//!
//! What every client of a fleet can read cheaply lives on the nodes
//! themselves, in a database of the fleet's own ([`Healing::meta_db`]):
//!
//! - [`MARKER`] holds the `run_id` of the node's process at the time it was
//!   last known to hold its shard's data. A restarted process has a new
//!   `run_id`, so an empty or rolled-back node can never pass for a
//!   verified one, whoever asks.
//! - [`hint_key`] is a list, kept on a node's peers (same shard, other
//!   groups), of the keys written to them that the node missed; and
//!   [`resync_key`] says a write without keys (`FLUSHALL`) was missed, so
//!   only a full copy will do. A client that starts later finds them when
//!   it connects.

use bytes::Bytes;
use resp::Frame;

/// What a router believes of a node's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trust {
    /// Not connected yet: nothing is known. Read like an unverified node.
    Unknown,
    /// Holds its shard's data: its answers are taken as they are.
    Verified,
    /// May lack data, for the reason given: read only when no verified
    /// replica is up, and an empty answer from it fails over.
    Unverified(Doubt),
    /// Being brought back to its peers' data: neither read nor written (it
    /// is a replica for a while, and its peers' replication feeds it).
    Repairing,
}

/// Why a node is [`Trust::Unverified`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Doubt {
    /// Its `run_id` changed since this router last saw it: it restarted.
    Restarted,
    /// It does not hold the marker of its own `run_id`: it restarted before
    /// this router first saw it, or was never verified.
    Unmarked,
    /// It missed writes this router sent (down, timed out, refused).
    Missed,
    /// Its peers hold hints of writes it missed, left by some client.
    Hinted,
    /// It answered `-LOADING`: it restarted and is reading a snapshot.
    Loading,
}

impl std::fmt::Display for Doubt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Doubt::Restarted => "restarted",
            Doubt::Unmarked => "not marked as holding its shard's data",
            Doubt::Missed => "missed writes",
            Doubt::Hinted => "its peers hold hints of writes it missed",
            Doubt::Loading => "loading a snapshot",
        })
    }
}

impl std::fmt::Display for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trust::Unknown => f.write_str("unknown"),
            Trust::Verified => f.write_str("verified"),
            Trust::Unverified(why) => write!(f, "unverified ({why})"),
            Trust::Repairing => f.write_str("repairing"),
        }
    }
}

/// Self-healing's settings: where the fleet's own keys live, and how
/// often a router looks at them again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Healing {
    /// The database of the fleet's own keys (markers, hints). The fleet's
    /// data should not use it.
    pub meta_db: u32,
    /// The database the client's connections select.
    pub db: u32,
    /// How often each node's marker, and the hints it holds for its peers,
    /// are read again, so that a client learns what another one saw (a
    /// node that missed that client's writes) without reconnecting.
    /// `None`: only when a connection opens.
    pub recheck: Option<std::time::Duration>,
    /// How many keys a router hints for one node before it asks for a full
    /// copy instead (the resync flag), so that a node down for long does
    /// not grow its peers' hint lists without bound.
    pub hint_limit: u64,
    /// Tells this router's resync flags from every other client's (a flag's
    /// value is the nonce and a count), so that a repair clears only the
    /// flags set before its sync: give each client a random one.
    pub nonce: u64,
}

impl Healing {
    /// The fleet's keys in `meta_db`, the data in `db`, rechecked every
    /// 5 seconds.
    pub fn new(meta_db: u32, db: u32) -> Healing {
        Healing {
            meta_db,
            db,
            recheck: Some(std::time::Duration::from_secs(5)),
            hint_limit: 100_000,
            nonce: 0,
        }
    }
}

impl Default for Healing {
    fn default() -> Healing {
        Healing::new(15, 0)
    }
}

/// What a node said of itself when a connection to it opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `run_id` from `INFO server`: new for every process.
    pub run_id: Bytes,
    /// The value of [`MARKER`] on the node, if any.
    pub marker: Option<Bytes>,
    /// The peers (same shard) this node holds hints or a resync flag for.
    pub hints_for: Vec<crate::NodeId>,
}

impl Identity {
    /// Whether the node holds the marker of its own process.
    pub fn is_marked(&self) -> bool {
        self.marker.as_ref() == Some(&self.run_id)
    }
}

/// The key, in [`Healing::meta_db`], whose value is the `run_id` of the
/// node's process when it was last verified.
pub const MARKER: &str = "__ember__:verified";

/// The prefix of every key the fleet keeps for itself.
pub const PREFIX: &str = "__ember__:";

/// The list, kept on its peers, of keys of database `db` that the node at
/// `addr` missed.
pub fn hint_key(db: u32, addr: &str) -> String {
    format!("{PREFIX}hints:{db}:{addr}")
}

/// The flag, kept on its peers, that the node at `addr` missed a write
/// without keys to database `db` (`FLUSHDB`...) or more hints than are kept:
/// it needs a full copy.
pub fn resync_key(db: u32, addr: &str) -> String {
    format!("{PREFIX}resync:{db}:{addr}")
}

/// The lock a repair of the node at `addr` holds, on the peer it copies
/// from.
pub fn lock_key(addr: &str) -> String {
    format!("{PREFIX}repairing:{addr}")
}

/// Whether an error reply means "this node cannot serve now" rather than
/// "this is the answer": `-LOADING`, `-MASTERDOWN`, `-READONLY`, `-BUSY`.
/// Reads fail over on it; writes count the group as failed.
pub fn is_unready(frame: &Frame) -> bool {
    let text = match frame {
        Frame::Error(t) | Frame::BulkError(t) => t,
        _ => return false,
    };
    let word = text.split(|&b| b == b' ').next().unwrap_or_default();
    matches!(word, b"LOADING" | b"MASTERDOWN" | b"READONLY" | b"BUSY")
}

/// Whether `frame`, the answer of read command `name` (lowercase), is what
/// a node that lacks the key would say: nil, an empty collection, `EXISTS`
/// 0, `TTL` -2, `TYPE` none. From a node that may have lost data such an
/// answer proves nothing.
pub fn is_empty_answer(name: &str, frame: &Frame) -> bool {
    match frame {
        Frame::Null | Frame::NullBulk | Frame::NullArray => true,
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
            // An MGET with any nil, a SCAN page with no keys.
            items.is_empty()
                || (name == "mget"
                    && items
                        .iter()
                        .any(|f| matches!(f, Frame::NullBulk | Frame::Null)))
        }
        Frame::Map(pairs) => pairs.is_empty(),
        Frame::Integer(0) => matches!(
            name,
            "exists"
                | "llen"
                | "strlen"
                | "hlen"
                | "hexists"
                | "hstrlen"
                | "scard"
                | "sismember"
                | "zcard"
                | "zcount"
                | "zlexcount"
                | "sintercard"
                | "xlen"
                | "bitcount"
                | "pfcount"
                | "getbit"
                | "dbsize"
        ),
        Frame::Integer(-2) => matches!(name, "ttl" | "pttl" | "expiretime" | "pexpiretime"),
        Frame::Simple(s) => name == "type" && &s[..] == b"none",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unready_errors_are_told_from_answers() {
        for text in [
            "LOADING Redis is loading the dataset in memory",
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            "READONLY You can't write against a read only replica.",
            "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
        ] {
            assert!(is_unready(&Frame::error(text)), "{text}");
        }
        for text in [
            "BUSYKEY Target key name already exists.",
            "ERR syntax error",
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ] {
            assert!(!is_unready(&Frame::error(text)), "{text}");
        }
        assert!(!is_unready(&Frame::simple("LOADING")));
    }

    #[test]
    fn empty_answers_by_command() {
        assert!(is_empty_answer("get", &Frame::NullBulk));
        assert!(is_empty_answer("lrange", &Frame::Array(vec![])));
        assert!(is_empty_answer(
            "mget",
            &Frame::Array(vec![Frame::bulk("a"), Frame::NullBulk])
        ));
        assert!(!is_empty_answer(
            "mget",
            &Frame::Array(vec![Frame::bulk("a")])
        ));
        assert!(is_empty_answer("exists", &Frame::Integer(0)));
        assert!(!is_empty_answer("incr", &Frame::Integer(0)));
        assert!(!is_empty_answer("exists", &Frame::Integer(1)));
        assert!(is_empty_answer("ttl", &Frame::Integer(-2)));
        assert!(!is_empty_answer("ttl", &Frame::Integer(-1)));
        assert!(is_empty_answer("type", &Frame::simple("none")));
        assert!(!is_empty_answer("type", &Frame::simple("string")));
        assert!(!is_empty_answer("get", &Frame::bulk("")));
    }

    #[test]
    fn key_names() {
        assert_eq!(
            hint_key(0, "127.0.0.1:7001"),
            "__ember__:hints:0:127.0.0.1:7001"
        );
        assert_eq!(resync_key(3, "h:1"), "__ember__:resync:3:h:1");
        assert!(lock_key("h:1").starts_with(PREFIX));
    }
}

//! The crate's one error type.

use std::io;

use route::{Failure, Outcome, RouteError};

/// Why a request got no answer, or an answer that is an error.
///
/// A Redis error reply is [`Error::Redis`]: the node's answer, not a broken
/// connection, which stays open for the next request. The others say that no
/// answer came: the router refused the request or ran out of replicas
/// ([`Error::Route`]), the node did not answer in time ([`Error::Timeout`]),
/// the socket failed ([`Error::Io`]), or the client is gone
/// ([`Error::Closed`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node answered with an error reply; this is its text, code first
    /// (`WRONGTYPE Operation against a key holding the wrong kind of value`).
    #[error("{0}")]
    Redis(String),
    /// The node did not answer within [`Options::timeout`](crate::Options::timeout)
    /// (plus the command's own wait, for a blocking command). Its connection
    /// was dropped and will be rebuilt.
    #[error("timed out")]
    Timeout,
    /// A connection could not be opened, or broke. For a [`Client`](crate::Client),
    /// failures of single nodes come as [`Error::Route`] instead, which says
    /// what each replica did.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The router refused the request (an unknown command, keys on several
    /// shards for a command that cannot be split...), or no replica answered
    /// it, or a write missed its policy. The message says which nodes did
    /// what.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// A typed method got a reply of a kind the command never sends, such as
    /// a bulk string for `INCR` (a server that is not Redis?).
    #[error("unexpected reply to {command}: {reply}")]
    UnexpectedReply {
        /// The command, uppercase.
        command: &'static str,
        /// The reply, abridged.
        reply: String,
    },
    /// The client's driver has stopped: the runtime it ran on is shutting
    /// down.
    #[error("the client is closed")]
    Closed,
    /// A repair could not be done, or gave up; the text says why. Both
    /// nodes were left serving (the peer unpaused, the node promoted).
    #[error("repair: {0}")]
    Repair(String),
}

impl Error {
    /// Whether the request failed because nodes did not answer in time: a
    /// [`Error::Timeout`], or a routing failure where every node that was
    /// tried timed out.
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout => true,
            Error::Route(e) => route_failures(e).is_some_and(|f| {
                !f.is_empty()
                    && f.iter()
                        .all(|f| matches!(f, Failure::Timeout | Failure::Reset))
            }),
            _ => false,
        }
    }

    /// Whether the request got no answer because of connections or node
    /// health (a timeout, a lost or refused connection, replicas marked
    /// down), as opposed to an answer that is an error or a request the
    /// router refused. Such a request may be retried.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Timeout | Error::Io(_) | Error::Closed => true,
            Error::Route(e) => route_failures(e).is_some(),
            _ => false,
        }
    }
}

/// The failures behind a routing error that reports nodes' outcomes.
fn route_failures(e: &RouteError) -> Option<Vec<Failure>> {
    let outcomes = match e {
        RouteError::Unavailable { attempts, .. } => attempts,
        RouteError::WriteFailed { outcomes, .. } => outcomes,
        RouteError::Partial { failed, .. } => {
            let mut all = Vec::new();
            for (_, e) in failed {
                all.extend(route_failures(e)?);
            }
            return Some(all);
        }
        _ => return None,
    };
    Some(
        outcomes
            .iter()
            .filter_map(|o| match o.outcome {
                Outcome::Failed(f) => Some(f),
                _ => None,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use route::{GroupId, GroupOutcome, NodeId, ShardId};

    use super::*;

    #[test]
    fn classification() {
        let attempt = |outcome| GroupOutcome {
            group: GroupId(0),
            node: NodeId(0),
            outcome,
        };
        let timed_out = Error::Route(RouteError::Unavailable {
            shard: ShardId(0),
            attempts: vec![
                attempt(Outcome::Failed(Failure::Timeout)),
                attempt(Outcome::Failed(Failure::Reset)),
            ],
        });
        assert!(timed_out.is_timeout() && timed_out.is_unavailable());
        let refused = Error::Route(RouteError::Unavailable {
            shard: ShardId(0),
            attempts: vec![attempt(Outcome::Failed(Failure::Connect))],
        });
        assert!(!refused.is_timeout() && refused.is_unavailable());
        let unknown = Error::Route(RouteError::UnknownCommand("nope".into()));
        assert!(!unknown.is_timeout() && !unknown.is_unavailable());
        let redis = Error::Redis("ERR syntax error".into());
        assert_eq!(redis.to_string(), "ERR syntax error");
        assert!(!redis.is_unavailable());
        assert!(Error::Timeout.is_timeout());
    }
}

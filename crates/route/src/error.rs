//! The one error type of the router, and what it reports about nodes.

use std::fmt;

use crate::{GroupId, NodeId, ShardId, WritePolicy};

/// Why a request could not be routed, or did not get an answer.
///
/// A Redis error reply (`-WRONGTYPE ...`, `-ERR syntax error`) is not a
/// `RouteError`: it is the node's answer, and arrives as
/// [`Frame::Error`](resp::Frame::Error) in an `Ok`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The topology given to [`Topology::new`](crate::Topology::new) was not
    /// a valid shape.
    #[error("bad topology: {0}")]
    Topology(String),
    /// A request with no arguments at all.
    #[error("empty command")]
    EmptyCommand,
    /// A command (or `container|subcommand`) that is not in the command
    /// table. Without knowing its keys the router cannot place it; send it
    /// to a chosen node with [`Router::submit_to`](crate::Router::submit_to).
    #[error("unknown command '{0}'")]
    UnknownCommand(String),
    /// The command has the wrong number of arguments for its arity, so its
    /// keys cannot be found.
    #[error("wrong number of arguments for '{0}' command")]
    WrongArity(String),
    /// The arguments that locate the keys are malformed: a `numkeys` that is
    /// not a count or claims more keys than there are arguments, a `SCAN`
    /// cursor this router did not make.
    #[error("invalid arguments for '{command}': {reason}")]
    BadArguments {
        /// The command, lowercase.
        command: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The keys of a command that cannot be split (`RENAME`, `SMOVE`,
    /// `BLPOP` on several lists, a transaction) live on different shards.
    #[error(
        "keys of '{command}' live on different shards ({first} and {second}); hash tags can keep them together"
    )]
    CrossShard {
        /// The command, lowercase (`multi` for a transaction).
        command: String,
        /// The shard of the first key.
        first: ShardId,
        /// The shard of the first key that is not on `first`.
        second: ShardId,
    },
    /// A command the router refuses to route, such as `SUBSCRIBE` (it needs
    /// a dedicated connection) or `SELECT` (connection state belongs to the
    /// driver).
    #[error("'{command}' is not routed: {reason}")]
    Unsupported {
        /// The command, lowercase.
        command: String,
        /// Why, and what to do instead.
        reason: &'static str,
    },
    /// [`Router::submit_to`](crate::Router::submit_to) named a node that is
    /// not in the topology.
    #[error("unknown {0}")]
    UnknownNode(NodeId),
    /// A read found no replica of its shard that answered: each was down,
    /// failed or timed out.
    #[error("no replica of {shard} answered: {}", Outcomes(attempts))]
    Unavailable {
        /// The shard read from.
        shard: ShardId,
        /// Every node tried or skipped, in the order of preference.
        attempts: Vec<GroupOutcome>,
    },
    /// A write was acknowledged by fewer groups than its policy needs. The
    /// groups that did answer have applied it.
    #[error(
        "write to {shard} got {acks} of the {needed} acknowledgements the {policy} policy needs: {}",
        Outcomes(outcomes)
    )]
    WriteFailed {
        /// The shard written to.
        shard: ShardId,
        /// The policy that was not met.
        policy: WritePolicy,
        /// How many groups answered.
        acks: usize,
        /// How many the policy needs.
        needed: usize,
        /// What each group did, by group.
        outcomes: Vec<GroupOutcome>,
    },
    /// Some parts of a command split by shard (`MGET`, `MSET`, `DEL`, `KEYS`,
    /// `FLUSHALL`...) failed. Parts are not atomic: the shards in `succeeded`
    /// did run theirs.
    #[error("{} of {} shards failed: {}", failed.len(), failed.len() + succeeded.len(), Failed(failed))]
    Partial {
        /// Shards whose part succeeded.
        succeeded: Vec<ShardId>,
        /// Shards whose part failed, with why.
        failed: Vec<(ShardId, RouteError)>,
    },
    /// A node's reply did not have the shape the command's merge needs (an
    /// `MGET` part that is not an array of as many values as keys).
    #[error("unexpected reply: {0}")]
    UnexpectedReply(String),
}

/// Why one command to one node did not get its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Failure {
    /// The driver could not connect to the node.
    Connect,
    /// The connection broke: reset by the peer, closed, or a read or write
    /// error.
    Closed,
    /// The node sent bytes that do not decode as RESP.
    Protocol,
    /// No reply within the timeout. Reported by the router.
    Timeout,
    /// Another command on the same connection timed out, so the connection
    /// was reset. Reported by the router.
    Reset,
    /// The node was marked down, so it was not tried. Reported by the router.
    Down,
    /// The node answered that it cannot serve now (`-LOADING`,
    /// `-MASTERDOWN`, `-READONLY`, `-BUSY`).
    Unready,
    /// The node is being repaired, so it was not tried. Reported by the
    /// router.
    Repairing,
    /// The node missed a write to the key (and is not repaired yet), so it
    /// was not asked. Reported by the router.
    Stale,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Failure::Connect => "could not connect",
            Failure::Closed => "connection lost",
            Failure::Protocol => "protocol error",
            Failure::Timeout => "timed out",
            Failure::Reset => "connection reset after a timeout",
            Failure::Down => "marked down",
            Failure::Unready => "cannot serve now",
            Failure::Repairing => "being repaired",
            Failure::Stale => "missed writes to the key",
        })
    }
}

/// What one group's node did with one sub-request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupOutcome {
    /// The group.
    pub group: GroupId,
    /// Its node for the shard in question.
    pub node: NodeId,
    /// What happened.
    pub outcome: Outcome,
}

/// The fate of one sub-request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The node answered (an error reply is an answer).
    Replied,
    /// The node did not answer.
    Failed(Failure),
    /// Still waiting when the request was decided.
    Pending,
}

impl fmt::Display for GroupOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}) ", self.group, self.node)?;
        match self.outcome {
            Outcome::Replied => f.write_str("replied"),
            Outcome::Failed(why) => why.fmt(f),
            Outcome::Pending => f.write_str("pending"),
        }
    }
}

/// Formats a list of outcomes as `a, b, c`.
struct Outcomes<'a>(&'a [GroupOutcome]);

impl fmt::Display for Outcomes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no node to try");
        }
        for (i, o) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            o.fmt(f)?;
        }
        Ok(())
    }
}

/// Formats failed parts as `shard 1: why; shard 2: why`.
struct Failed<'a>(&'a [(ShardId, RouteError)]);

impl fmt::Display for Failed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (shard, err)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{shard}: {err}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let outcomes = vec![
            GroupOutcome {
                group: GroupId(0),
                node: NodeId(1),
                outcome: Outcome::Replied,
            },
            GroupOutcome {
                group: GroupId(1),
                node: NodeId(3),
                outcome: Outcome::Failed(Failure::Timeout),
            },
            GroupOutcome {
                group: GroupId(2),
                node: NodeId(5),
                outcome: Outcome::Pending,
            },
        ];
        let err = RouteError::WriteFailed {
            shard: ShardId(1),
            policy: WritePolicy::All,
            acks: 1,
            needed: 3,
            outcomes,
        };
        assert_eq!(
            err.to_string(),
            "write to shard 1 got 1 of the 3 acknowledgements the all policy needs: \
             group 0 (node 1) replied, group 1 (node 3) timed out, group 2 (node 5) pending"
        );
        let partial = RouteError::Partial {
            succeeded: vec![ShardId(0)],
            failed: vec![(
                ShardId(2),
                RouteError::Unavailable {
                    shard: ShardId(2),
                    attempts: vec![],
                },
            )],
        };
        assert_eq!(
            partial.to_string(),
            "1 of 2 shards failed: shard 2: no replica of shard 2 answered: no node to try"
        );
        assert_eq!(
            RouteError::WrongArity("get".into()).to_string(),
            "wrong number of arguments for 'get' command"
        );
    }
}

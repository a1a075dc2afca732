//! Small copyable ids.

use std::fmt;
use std::hash::Hasher;

/// A node: one Redis server, by its index in the [`Topology`](crate::Topology).
///
/// Node `g * S + s` is shard `s` of replica group `g`, for a topology of `S`
/// shards per group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

/// A replica group: a complete copy of the keyspace, split over its shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub u32);

/// A shard: the part of the keyspace that [`jump`](crate::jump) sends a key
/// to. Shard `s` of every group holds the same keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub u32);

/// A request submitted to the [`Router`](crate::Router), named again in its
/// [`Event::Completed`](crate::Event::Completed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// The generation of the connection to one node.
///
/// The router starts a new epoch whenever it gives up on a node's connection
/// (a timeout, a failure the driver reported). Each [`Transmit`](crate::Transmit)
/// carries the epoch it must be written on: a driver whose connection to
/// that node belongs to an older epoch closes it, with everything still
/// queued on it, and opens a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch(pub u32);

/// One command sent to one node, as the router knows it.
///
/// Replies on a connection arrive in the order the commands were written,
/// so a driver keeps a FIFO queue of tokens per connection: push a
/// transmit's token when writing it, pop the front when a reply arrives, and
/// hand both to [`Router::handle_reply`](crate::Router::handle_reply).
/// Tokens are never reused, and a token whose connection epoch has passed is
/// ignored, so a reply that comes late can never answer a later request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token {
    pub(crate) seq: u64,
    /// The first token of its run: a transaction's commands share one.
    pub(crate) sub: u64,
    pub(crate) epoch: Epoch,
}

impl Token {
    /// The connection epoch this command was written for.
    pub fn epoch(self) -> Epoch {
        self.epoch
    }
}

macro_rules! display {
    ($($ty:ident $prefix:literal),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, " {}"), self.0)
            }
        }
    )*};
}

display!(NodeId "node", GroupId "group", ShardId "shard", RequestId "request", Epoch "epoch");

/// Hashes the router's counters (request ids, token numbers), for maps
/// keyed by them (`BuildHasherDefault<SeqHasher>`): a multiplication spreads
/// consecutive numbers well enough, for a fraction of SipHash's cost, and
/// nobody outside chooses them.
#[derive(Debug, Default)]
pub struct SeqHasher(u64);

impl Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

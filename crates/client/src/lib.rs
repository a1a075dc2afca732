//! Ember's distributed Redis client on tokio.
//!
//! Ember spreads a keyspace over `R` replica groups of `S` shards, each a
//! plain Redis (or Ember) server: every group holds all keys, split over
//! its shards by a jump hash. [`ember-route`](route) decides where each
//! command goes and what its answer is; this crate moves the bytes:
//!
//! - [`Client`]: the distributed client. Typed methods for the common
//!   commands ([`get`](Client::get), [`set_with`](Client::set_with),
//!   [`mget`](Client::mget), [`lpush`](Client::lpush)...), and
//!   [`cmd`](Client::cmd) for any command the router knows. Clones share
//!   one driver task.
//! - [`Connection`]: the same machinery for a single server, sending every
//!   command as it is: a small pipelining Redis client.
//! - [`Error`]: one error type, where a Redis error reply is
//!   [`Error::Redis`].
//! - `ember-cli` (the `cli` feature, on by default): a `redis-cli` for a
//!   topology, with `locate`, `bench` and a pipelined bulk-load mode. Its
//!   code is the [`cli`] module, so it can be tested and embedded.
//!
//! # How requests travel
//!
//! One driver task owns the [`Router`](route::Router) and every socket. A
//! request goes to it through a channel with a oneshot for the answer. Each
//! time it wakes, the driver takes all the input that is ready (requests,
//! replies, the timer), then encodes every command the router wants sent
//! into its connection's buffer and writes each buffer once: concurrent
//! requests for one node share one `write` and one connection. Replies are
//! matched to commands in order, per connection. A connection that times
//! out or breaks is dropped with everything queued on it, and the next
//! command opens a new one, so a late reply can never answer a later
//! request. Nodes that keep failing are marked down and probed back with
//! exponential backoff.
//!
//! - [`Subscription`]: pub/sub across the fleet, from
//!   [`Client::subscribe`], [`psubscribe`](Client::psubscribe) and
//!   [`ssubscribe`](Client::ssubscribe); [`Client::publish`] reaches every
//!   replica group, a subscription listens in one and moves when its node
//!   fails.
//!
//! What it does not do: Redis Cluster's slots and redirections (a topology
//! is static), RESP3 (but on a subscription's connections, when
//! [`Options::pubsub_resp3`] asks), `WATCH`.
#![warn(missing_docs)]

#[cfg(feature = "cli")]
pub mod cli;
mod client;
mod commands;
mod driver;
mod error;
mod options;
mod pubsub;
mod repair;

pub use client::{Client, Connection, NodeEvent, NodeEvents, Pending, RawPending};
pub use commands::{SetOptions, SetReply};
pub use driver::Answer;
pub use error::Error;
pub use options::Options;
pub use pubsub::{Kind, Message, Subscription};
pub use repair::{RepairKind, RepairReport};
pub use resp::Frame;
pub use route::{
    Backoff, Command, Doubt, NodeId, ReadPreference, RouteError, ShardId, Topology, Trust,
    WritePolicy,
};

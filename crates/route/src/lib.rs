//! The routing core of Ember's distributed Redis client, with no I/O.
//!
//! Ember's client spreads a keyspace over `R` replica groups of `S` shards:
//! each group is a complete copy, split over its `S` nodes, and shard `s` of
//! every group holds the same keys. This crate decides everything about a
//! request except how bytes travel:
//!
//! - **Placement** ([`Topology`]): a key's shard is
//!   `jump(xxh64(key, seed 0), S)`, bit for bit what the original Go client
//!   computes (`cespare/xxhash.Sum64` and the Go port of Lamping and Veach's
//!   jump hash, written out in [`jump`] rather than taken from a crate so its
//!   float steps visibly match Go's). Redis Cluster's hash tags are opt-in.
//! - **Commands** ([`lookup`], [`resolve`], [`CommandInfo`]): for Redis 7.0's
//!   commands, where the keys are, whether they write or block, and how they
//!   are routed. Unknown commands are an error rather than a guess; send them
//!   to a chosen node with [`Router::submit_to`].
//! - **Plans** ([`plan`], [`Merge`]): writes go to every replica group,
//!   reads to one replica; `MGET`, `MSET`, `DEL`... are split by shard and
//!   merged; `DBSIZE`, `KEYS`, `FLUSHALL` run on every shard; `SCAN`'s cursor
//!   walks the shards in turn. Commands that cannot be split and whose keys
//!   are spread are refused ([`RouteError::CrossShard`]), never half-run.
//! - **The router** ([`Router`]): a state machine that sends the plans'
//!   commands, applies the write policy, fails reads over to the next
//!   replica on connection errors and timeouts (not on a nil or an error
//!   reply: those are answers), times out commands and resets their
//!   connections, marks failing nodes down and probes them back with
//!   exponential backoff and seeded jitter.
//!
//! What it refuses to do: open sockets, spawn tasks, or read the clock.
//! Every input that depends on time takes `now: Instant` from the caller,
//! and the crate's `clippy.toml` bans `Instant::now`. That makes a
//! simulation with fake nodes and a virtual clock (`tests/sim.rs`) as
//! faithful as the real thing, and every failure scenario a deterministic
//! test.
//!
//! # Driving the router
//!
//! A driver (in `ember-client`) owns the sockets and one timer. After every
//! input it drains the outputs, like a `quinn` connection driver:
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use ember_route::{Config, Event, Router, Topology};
//! use resp::Frame;
//!
//! let topology = Topology::new([["127.0.0.1:7000", "127.0.0.1:7001"]]).unwrap();
//! let mut router = Router::new(topology, Config::default());
//! # #[allow(clippy::disallowed_methods)]
//! let now = Instant::now(); // the driver's clock, never the router's
//!
//! let id = router.submit(now, vec![Bytes::from("GET"), Bytes::from("foo")]).unwrap();
//! while let Some(tx) = router.poll_transmit() {
//!     // Write `tx.command` to `tx.node` on the connection of `tx.token.epoch()`,
//!     // and push `tx.token` on that connection's FIFO. Here, the node answers:
//!     router.handle_reply(now, tx.node, tx.token, Frame::bulk("bar"));
//! }
//! // Re-arm the timer: call `handle_timeout` at `router.poll_timeout()`.
//! assert_eq!(router.poll_timeout(), None);
//! while let Some(event) = router.poll_event() {
//!     match event {
//!         Event::Completed { id: done, result } => {
//!             assert_eq!(done, id);
//!             assert_eq!(result, Ok(Frame::bulk("bar")));
//!         }
//!         // NodeDown, NodeUp: log them. ResetConnection: close that socket.
//!         _ => {}
//!     }
//! }
//! ```
#![warn(missing_docs)]

mod command;
mod config;
mod error;
mod hash;
mod id;
mod plan;
mod router;
mod topology;
mod trust;

pub use command::{Block, CommandInfo, KeySpec, Reduce, Route, commands, lookup, resolve};
pub use config::{Backoff, Config, ReadPreference, WritePolicy};
pub use error::{Failure, GroupOutcome, Outcome, RouteError};
pub use hash::{hash_tag, jump, key_hash};
pub use id::{Epoch, GroupId, NodeId, RequestId, SeqHasher, ShardId, Token};
pub use plan::{Merge, Part, Plan, Target, plan, plan_transaction};
pub use router::{Command, Event, Router, Transmit};
pub use topology::Topology;
pub use trust::{
    Doubt, Healing, Identity, MARKER, PREFIX, Trust, hint_key, is_empty_answer, is_unready,
    lock_key, resync_key,
};

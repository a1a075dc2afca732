//! ember-server: a Redis 7.0 compatible server.
//!
//! [`run`] serves clients on a listener until a stop signal; the
//! `ember-server` binary wraps it with flags, a config file and signal
//! handling. Tests start it on `127.0.0.1:0`.
//!
//! Inside: each connection is a task that reads requests with
//! `ember-resp`'s `RequestDecoder`, runs them against a sharded keyspace
//! (see `db.rs`), and writes every reply of a pipelined batch at once.
#![warn(missing_docs)]

mod aof;
mod args;
mod blocking;
mod client;
mod cmd;
pub mod config;
mod db;
#[cfg(feature = "grpc")]
mod grpc;
mod kill;
mod latency;
mod lazyfree;
pub mod memory;
mod monitor;
mod notify;
mod outbuf;
mod pause;
mod pubsub;
mod rdb;
mod repl;
mod reply;
mod save;
mod script;
mod server;
mod tracking;
mod turn;

pub use config::{Config, ConfigError, Flags};
pub use memory::Allocator;
pub use server::{ServeError, Workers, run, run_on, run_on_while_loading};

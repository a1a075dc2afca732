//! Ember's end-to-end tests: one binary, one module per area.

mod bitmaps;
mod check;
mod client;
mod client_pause;
mod commands;
mod diff;
mod dump_restore;
mod functions;
mod grpc;
mod hashes;
mod healing;
mod migrate;
mod protocol_vs_redis;
mod proxy;
mod pubsub;
mod python;
mod rdb;
mod replication;
mod replies_from_redis;
mod scripting;
mod server_e2e;
mod server_vs_redis;
mod sets;
mod sort;
mod zsets;

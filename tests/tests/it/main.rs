//! Ember's end-to-end tests: one binary, one module per area.

// The server's counted allocator, as in `ember-server`: the Ember nodes
// the tests start are this binary run again (`NodeProcess`).
#[global_allocator]
static ALLOC: server::Allocator = server::Allocator;

mod aof;
mod bitmaps;
mod check;
mod client;
mod client_eviction;
mod client_memory;
mod client_pause;
mod commands;
mod diff;
mod dump_restore;
mod fleet_pubsub;
mod functions;
mod grpc;
mod hashes;
mod healing;
mod lazyfree;
mod memory;
mod migrate;
mod monitor;
mod notify;
mod persistence;
mod protocol_vs_redis;
mod proxy;
mod proxy_pubsub;
mod proxy_raw;
mod pubsub;
mod python;
mod rdb;
mod redis_crate;
mod replication;
mod replies_from_redis;
mod scripting;
mod server_e2e;
mod server_vs_redis;
mod sets;
mod sort;
mod tracking;
mod zsets;

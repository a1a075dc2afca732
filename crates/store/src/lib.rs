//! ember-store: Ember's values and, piece by piece, its keyspace.
//!
//! What a key can hold and how it is encoded: strings that live inside
//! their entry when short ([`value`]), the packed list ([`list`]), the
//! sets in their two encodings ([`set`], on the hash table of [`dict`]), the
//! long-double arithmetic of INCRBYFLOAT ([`longdouble`]), the bit
//! arithmetic of the bitmap commands ([`bits`]) and LCS's table
//! ([`lcs`]), glob patterns ([`glob`]) and the RDB encodings of values ([`rdb`]: DUMP payloads,
//! and the pieces a file is made of). [`keyspace`] has the keyspace's
//! leaf types: entries, keys, their hash, and the index of keys with a
//! deadline that expiry samples. The server composes these with its
//! sockets, files and clocks.
//!
//! What this crate refuses to do: no I/O (encoders write into a
//! `std::io::Write` they are handed, decoders read a slice), no async
//! runtime, no threads, and no clock: where time matters it is an
//! argument (`crates/store/clippy.toml` bans `Instant::now` and
//! `SystemTime::now`). `scripts/test` checks that nothing async enters its
//! dependency tree. It never calls up into the server: what the server must
//! hear about is returned to it.
#![warn(missing_docs)]

pub mod bits;
pub mod dict;
pub mod glob;
pub mod hash;
pub mod keyspace;
pub mod lcs;
pub mod list;
pub mod longdouble;
pub mod rdb;
mod rng;
pub mod set;
pub mod value;
pub mod zset;

pub use hash::Hash;
pub use list::List;
pub use rng::Rng;
pub use set::Set;
pub use value::{Form, Str, Value};

//! The client's settings.

use std::time::Duration;

use route::{Backoff, Config, ReadPreference, WritePolicy};

/// How a [`Client`](crate::Client) or [`Connection`](crate::Connection)
/// behaves. Start from [`Options::default`] and change the fields you need:
///
/// ```
/// use std::time::Duration;
/// use ember_client::{Options, WritePolicy};
///
/// let mut options = Options::default();
/// options.timeout = Duration::from_millis(250);
/// options.write_policy = WritePolicy::Quorum;
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Options {
    /// How long a node has to answer a command (1 s). A blocking command
    /// (`BLPOP k 5`) gets its own wait on top. Past it, the command fails
    /// over or fails, and the node's connection is dropped and rebuilt.
    pub timeout: Duration,
    /// How long opening a connection may take (1 s).
    pub connect_timeout: Duration,
    /// How many replica groups must acknowledge a write ([`WritePolicy::One`]).
    pub write_policy: WritePolicy,
    /// Which replica a read tries first ([`ReadPreference::Fixed`]: group 0).
    pub read_preference: ReadPreference,
    /// How many failures in a row (lost connections, refused connections,
    /// timeouts) mark a node down (3).
    pub failure_threshold: u32,
    /// When to probe a node that is down (100 ms doubling to 10 s, with
    /// jitter).
    pub backoff: Backoff,
    /// The seed of the backoff's jitter.
    pub seed: u64,
    /// A password: every connection sends `AUTH [username] password` first
    /// (none).
    pub password: Option<String>,
    /// The ACL user for `password` (none: Redis's `default` user).
    pub username: Option<String>,
    /// The database every connection selects (0).
    pub database: u32,
    /// Self-healing (on): a node that restarted or missed writes is not
    /// believed until it is repaired, and writes it missed leave hints on
    /// its peers (see docs/client.md). Off, every answer is taken as it is.
    pub healing: bool,
    /// The database of the fleet's own keys: markers, hints, repair locks
    /// (15). The fleet's data should live elsewhere.
    pub meta_database: u32,
    /// Repair a doubted node as soon as it answers again and a peer of its
    /// shard is verified (on). Off, [`Client::repair`](crate::Client::repair)
    /// or `ember-cli repair` does it.
    pub repair: bool,
    /// How long a full repair may take before it gives up and restores
    /// both nodes (10 min).
    pub repair_timeout: Duration,
    /// How long a repair may pause the peer's writes while the node catches
    /// up with it (`CLIENT PAUSE`, 2 s).
    pub repair_pause: Duration,
    /// How many hinted keys a repair copies one by one; a node that missed
    /// more gets a full copy (100,000). A client also stops hinting keys
    /// for a node past this many, and asks for a full copy instead, so
    /// that the peers' hint lists stay bounded.
    pub hint_limit: u64,
    /// How often every node's marker, and the hints it holds for its
    /// peers, are read again, so that this client learns within that time
    /// of writes a node missed from another client (5 s; `None`: only when
    /// a connection opens).
    pub recheck: Option<Duration>,
    /// Subscriptions speak RESP3 (off): each of a
    /// [`Subscription`](crate::Subscription)'s connections sends `HELLO 3`
    /// before subscribing, so that its node pushes messages as RESP3 push
    /// frames and answers other commands on that connection (the
    /// keep-alive `PING`) with ordinary replies between them, as Redis 6
    /// and later allow. A node that refuses `HELLO 3` is spoken to in RESP2
    /// on that connection. Off, they speak RESP2, which every Redis
    /// understands.
    pub pubsub_resp3: bool,
}

impl Default for Options {
    fn default() -> Options {
        let config = Config::default();
        Options {
            timeout: config.timeout,
            connect_timeout: Duration::from_secs(1),
            write_policy: config.write_policy,
            read_preference: config.read_preference,
            failure_threshold: config.failure_threshold,
            backoff: config.backoff,
            seed: config.seed,
            password: None,
            username: None,
            database: 0,
            healing: true,
            meta_database: 15,
            repair: true,
            repair_timeout: Duration::from_secs(600),
            repair_pause: Duration::from_secs(2),
            hint_limit: 100_000,
            recheck: Some(Duration::from_secs(5)),
            pubsub_resp3: false,
        }
    }
}

impl Options {
    /// The router's settings for these options.
    pub(crate) fn router_config(&self) -> Config {
        let mut config = Config::default();
        config.timeout = self.timeout;
        config.write_policy = self.write_policy;
        config.read_preference = self.read_preference;
        config.failure_threshold = self.failure_threshold;
        config.backoff = self.backoff;
        config.seed = self.seed;
        config.healing = self.healing.then(|| {
            let mut healing = route::Healing::new(self.meta_database, self.database);
            healing.recheck = self.recheck;
            healing.hint_limit = self.hint_limit;
            healing.nonce = std::hash::BuildHasher::hash_one(
                &std::collections::hash_map::RandomState::new(),
                std::process::id(),
            );
            healing
        });
        config
    }
}

//! Configuration: command-line flags, a redis.conf-style file, and the
//! parameters CONFIG GET and CONFIG SET see.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Parser;

/// `ember-server [CONFIG-FILE] [--port N] [--bind ADDR]...`
#[derive(Debug, Parser)]
#[command(
    name = "ember-server",
    version,
    about = "A Redis 7.0 compatible server"
)]
pub struct Flags {
    /// A redis.conf-style file (`port 7000`, one directive a line), read
    /// before the flags, which override it.
    pub config_file: Option<PathBuf>,
    /// TCP port to listen on.
    #[arg(long)]
    pub port: Option<u16>,
    /// Addresses to listen on.
    #[arg(long, num_args = 1..)]
    pub bind: Option<Vec<String>>,
    /// Number of databases.
    #[arg(long)]
    pub databases: Option<usize>,
    /// Most clients connected at once.
    #[arg(long)]
    pub maxclients: Option<usize>,
    /// Password clients must give with AUTH.
    #[arg(long)]
    pub requirepass: Option<String>,
    /// debug, verbose, notice or warning.
    #[arg(long)]
    pub loglevel: Option<String>,
    /// Follow a master: `--replicaof HOST PORT`.
    #[arg(long, num_args = 2, value_names = ["HOST", "PORT"])]
    pub replicaof: Option<Vec<String>>,
    /// The password to give the master (AUTH), as `masterauth`.
    #[arg(long)]
    pub masterauth: Option<String>,
    /// Threads that serve connections (default: one per core but one, at
    /// least one).
    #[arg(long)]
    pub threads: Option<usize>,
    /// The working directory: where SAVE writes and startup loads the RDB
    /// file.
    #[arg(long)]
    pub dir: Option<String>,
    /// The RDB file's name within `dir` (default `dump.rdb`).
    #[arg(long)]
    pub dbfilename: Option<String>,
    /// Serve the gRPC API (`ember.v1.Cache`) on this port too, on the first
    /// `bind` address.
    #[arg(long)]
    pub grpc_port: Option<u16>,
    /// Any other parameter CONFIG knows: `--set name value`, or
    /// `--name value...` as redis-server accepts.
    #[arg(long = "set", value_names = ["NAME", "VALUE"], num_args = 2)]
    pub set: Vec<String>,
}

/// A configuration error: Redis's wording where Redis has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A line or flag that cannot be used.
    #[error("{0}")]
    Invalid(String),
}

/// The kind of value a parameter holds, for validation.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Any text.
    Text,
    /// `yes` or `no`.
    Bool,
    /// An integer within bounds; memory units (`1mb`) allowed.
    Int(i64, i64),
    /// One of a few words.
    Enum(&'static [&'static str]),
    /// Percentiles, 0 to 100, separated by spaces (`latency-tracking-info-percentiles`).
    Percentiles,
    /// Bytes (memory units allowed), or a percentage (`10%`) of
    /// `maxmemory` (`maxmemory-clients`).
    MemoryOrPercent,
}

/// Every parameter, Redis 7.0's default, its kind, and whether CONFIG SET
/// may change it at run time.
const PARAMS: &[(&str, &str, Kind, bool)] = &[
    ("port", "6379", Kind::Int(0, 65535), false),
    ("bind", "127.0.0.1", Kind::Text, false),
    ("databases", "16", Kind::Int(1, i32::MAX as i64), false),
    ("maxclients", "10000", Kind::Int(1, i32::MAX as i64), true),
    ("requirepass", "", Kind::Text, true),
    (
        "loglevel",
        "notice",
        Kind::Enum(&["debug", "verbose", "notice", "warning"]),
        true,
    ),
    ("save", "3600 1 300 100 60 10000", Kind::Text, true),
    // Automatic saves and what a failed one does (see `save.rs`).
    ("stop-writes-on-bgsave-error", "yes", Kind::Bool, true),
    (
        "shutdown-on-sigterm",
        "default",
        Kind::Enum(&["default", "save", "nosave", "now", "force"]),
        true,
    ),
    (
        "shutdown-on-sigint",
        "default",
        Kind::Enum(&["default", "save", "nosave", "now", "force"]),
        true,
    ),
    // Where the log goes: "" is standard output.
    ("logfile", "", Kind::Text, false),
    ("appendonly", "no", Kind::Bool, true),
    (
        "appendfsync",
        "everysec",
        Kind::Enum(&["always", "everysec", "no"]),
        true,
    ),
    ("dir", "", Kind::Text, true),
    ("dbfilename", "dump.rdb", Kind::Text, true),
    // The append-only file (see `aof/`).
    ("appenddirname", "appendonlydir", Kind::Text, false),
    ("appendfilename", "appendonly.aof", Kind::Text, false),
    ("no-appendfsync-on-rewrite", "no", Kind::Bool, true),
    (
        "auto-aof-rewrite-percentage",
        "100",
        Kind::Int(0, i32::MAX as i64),
        true,
    ),
    (
        "auto-aof-rewrite-min-size",
        "67108864",
        Kind::Int(0, i64::MAX),
        true,
    ),
    ("aof-use-rdb-preamble", "yes", Kind::Bool, true),
    ("aof-load-truncated", "yes", Kind::Bool, true),
    ("aof-timestamp-enabled", "no", Kind::Bool, true),
    ("aof-disable-auto-gc", "no", Kind::Bool, true),
    ("aof-rewrite-incremental-fsync", "yes", Kind::Bool, true),
    // Microseconds to wait per key an AOF rewrite writes, for tests.
    (
        "rdb-key-save-delay",
        "0",
        Kind::Int(i32::MIN as i64, i32::MAX as i64),
        true,
    ),
    ("daemonize", "no", Kind::Bool, false),
    ("protected-mode", "yes", Kind::Bool, true),
    ("timeout", "0", Kind::Int(0, i32::MAX as i64), true),
    ("tcp-keepalive", "300", Kind::Int(0, i32::MAX as i64), true),
    ("hz", "10", Kind::Int(0, i32::MAX as i64), true),
    (
        "proto-max-bulk-len",
        "536870912",
        Kind::Int(1024 * 1024, i64::MAX),
        true,
    ),
    (
        "client-query-buffer-limit",
        "1073741824",
        Kind::Int(1024 * 1024, i64::MAX),
        true,
    ),
    ("maxmemory", "0", Kind::Int(0, i64::MAX), true),
    // Client eviction (`outbuf.rs`).
    ("maxmemory-clients", "0", Kind::MemoryOrPercent, true),
    // Microseconds to wait per key loaded at startup, for tests.
    (
        "key-load-delay",
        "0",
        Kind::Int(i32::MIN as i64, i32::MAX as i64),
        true,
    ),
    (
        "maxmemory-policy",
        "noeviction",
        Kind::Enum(&[
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "noeviction",
            // Ember's own (docs/memory.md; see `EMBER_ONLY_VALUES`).
            "allkeys-s3fifo",
        ]),
        true,
    ),
    // Eviction's settings (see memory.rs).
    (
        "maxmemory-samples",
        "5",
        Kind::Int(1, i32::MAX as i64),
        true,
    ),
    ("maxmemory-eviction-tenacity", "10", Kind::Int(0, 100), true),
    ("lfu-log-factor", "10", Kind::Int(0, i32::MAX as i64), true),
    ("lfu-decay-time", "1", Kind::Int(0, i32::MAX as i64), true),
    ("replica-ignore-maxmemory", "yes", Kind::Bool, true),
    ("slave-ignore-maxmemory", "yes", Kind::Bool, true),
    (
        "list-max-listpack-size",
        "-2",
        Kind::Int(i32::MIN as i64, i32::MAX as i64),
        true,
    ),
    (
        "list-max-ziplist-size",
        "-2",
        Kind::Int(i32::MIN as i64, i32::MAX as i64),
        true,
    ),
    (
        "list-compress-depth",
        "0",
        Kind::Int(0, i32::MAX as i64),
        true,
    ),
    (
        "set-max-intset-entries",
        "512",
        Kind::Int(0, i64::MAX),
        true,
    ),
    (
        "hash-max-listpack-entries",
        "512",
        Kind::Int(0, i64::MAX),
        true,
    ),
    (
        "hash-max-ziplist-entries",
        "512",
        Kind::Int(0, i64::MAX),
        true,
    ),
    (
        "hash-max-listpack-value",
        "64",
        Kind::Int(0, i64::MAX),
        true,
    ),
    ("hash-max-ziplist-value", "64", Kind::Int(0, i64::MAX), true),
    (
        "zset-max-listpack-entries",
        "128",
        Kind::Int(0, i64::MAX),
        true,
    ),
    (
        "zset-max-ziplist-entries",
        "128",
        Kind::Int(0, i64::MAX),
        true,
    ),
    (
        "zset-max-listpack-value",
        "64",
        Kind::Int(0, i64::MAX),
        true,
    ),
    ("zset-max-ziplist-value", "64", Kind::Int(0, i64::MAX), true),
    ("lazyfree-lazy-user-del", "no", Kind::Bool, true),
    ("lazyfree-lazy-user-flush", "no", Kind::Bool, true),
    ("lazyfree-lazy-eviction", "no", Kind::Bool, true),
    ("lazyfree-lazy-expire", "no", Kind::Bool, true),
    ("lazyfree-lazy-server-del", "no", Kind::Bool, true),
    ("replica-lazy-flush", "no", Kind::Bool, true),
    ("slave-lazy-flush", "no", Kind::Bool, true),
    ("lua-time-limit", "5000", Kind::Int(0, i64::MAX), true),
    ("busy-reply-threshold", "5000", Kind::Int(0, i64::MAX), true),
    ("repl-backlog-size", "1048576", Kind::Int(1, i64::MAX), true),
    ("replicaof", "", Kind::Text, false),
    (
        "client-output-buffer-limit",
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        Kind::Text,
        true,
    ),
    ("masterauth", "", Kind::Text, true),
    ("masteruser", "", Kind::Text, true),
    (
        "repl-ping-replica-period",
        "10",
        Kind::Int(1, i32::MAX as i64),
        true,
    ),
    ("repl-timeout", "60", Kind::Int(1, i32::MAX as i64), true),
    ("replica-read-only", "yes", Kind::Bool, false),
    ("replica-serve-stale-data", "yes", Kind::Bool, true),
    (
        "replica-priority",
        "100",
        Kind::Int(0, i32::MAX as i64),
        true,
    ),
    ("repl-diskless-sync", "yes", Kind::Bool, true),
    (
        "repl-diskless-sync-delay",
        "5",
        Kind::Int(0, i32::MAX as i64),
        true,
    ),
    (
        "repl-diskless-load",
        "disabled",
        Kind::Enum(&["disabled", "on-empty-db", "swapdb"]),
        true,
    ),
    (
        "repl-backlog-ttl",
        "3600",
        Kind::Int(0, i32::MAX as i64),
        true,
    ),
    ("slaveof", "", Kind::Text, false),
    ("slave-read-only", "yes", Kind::Bool, false),
    ("slave-serve-stale-data", "yes", Kind::Bool, true),
    ("slave-priority", "100", Kind::Int(0, i32::MAX as i64), true),
    (
        "repl-ping-slave-period",
        "10",
        Kind::Int(1, i32::MAX as i64),
        true,
    ),
    (
        "min-replicas-to-write",
        "0",
        Kind::Int(0, i32::MAX as i64),
        true,
    ),
    (
        "min-replicas-max-lag",
        "10",
        Kind::Int(0, i32::MAX as i64),
        true,
    ),
    ("latency-tracking", "yes", Kind::Bool, true),
    (
        "latency-tracking-info-percentiles",
        "50 99 99.9",
        Kind::Percentiles,
        true,
    ),
    (
        "slowlog-log-slower-than",
        "10000",
        Kind::Int(-1, i64::MAX),
        true,
    ),
    ("slowlog-max-len", "128", Kind::Int(0, i64::MAX), true),
    ("notify-keyspace-events", "", Kind::Text, true),
    (
        "tracking-table-max-keys",
        "1000000",
        Kind::Int(0, i64::MAX),
        true,
    ),
    ("activerehashing", "yes", Kind::Bool, true),
    (
        "enable-debug-command",
        "no",
        Kind::Enum(&["yes", "no", "local"]),
        false,
    ),
    ("io-threads", "1", Kind::Int(1, 128), false),
    // Ember's own: the port of the gRPC API (0: none), on the first `bind`
    // address.
    ("grpc-port", "0", Kind::Int(0, 65535), false),
];

/// The parameter table's aliases: Redis 7.0 keeps the old ziplist names in
/// step with the listpack ones.
const ALIASES: &[(&str, &str)] = &[
    ("slaveof", "replicaof"),
    ("lua-time-limit", "busy-reply-threshold"),
    ("slave-read-only", "replica-read-only"),
    ("slave-serve-stale-data", "replica-serve-stale-data"),
    ("slave-priority", "replica-priority"),
    ("repl-ping-slave-period", "repl-ping-replica-period"),
    ("slave-ignore-maxmemory", "replica-ignore-maxmemory"),
    ("slave-lazy-flush", "replica-lazy-flush"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
];

/// Parameters for tests that a CONFIG GET pattern does not show (Redis's
/// `HIDDEN_CONFIG`).
const HIDDEN: &[&str] = &[
    "key-load-delay",
    "rdb-key-save-delay",
    "loading-process-events-interval-bytes",
    "use-exit-on-panic",
    "watchdog-period",
];

/// The server's configuration: every parameter by name, as text in the
/// canonical form CONFIG GET shows.
#[derive(Debug, Clone)]
pub struct Config {
    params: BTreeMap<&'static str, String>,
    /// The file it was read from, absolute (INFO's `config_file`).
    file: Option<PathBuf>,
    /// `notify-keyspace-events` as class bits: its text loses `n` beside
    /// `A`, as Redis's does, while the class stays on.
    notify_classes: u32,
    /// Whether lines are being read from a file or the command line, where
    /// `save` lines add up (the first one replaces the default), rather
    /// than from CONFIG SET, where `save` replaces.
    reading: bool,
    /// A `save` line was read already.
    save_read: bool,
}

impl Default for Config {
    fn default() -> Self {
        let mut params: BTreeMap<&'static str, String> = PARAMS
            .iter()
            .map(|(name, default, ..)| (*name, default.to_string()))
            .collect();
        if let Ok(dir) = std::env::current_dir() {
            params.insert("dir", dir.display().to_string());
        }
        Config {
            params,
            file: None,
            notify_classes: 0,
            reading: false,
            save_read: false,
        }
    }
}

impl Config {
    /// The configuration from flags, reading the config file they name.
    pub fn from_flags(flags: &Flags) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        if let Some(path) = &flags.config_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::Invalid(format!("cannot read config file {}: {e}", path.display()))
            })?;
            config.load_file(&text)?;
            config.file = Some(std::path::absolute(path).unwrap_or_else(|_| path.clone()));
        }
        let mut set =
            |name: &str, value: String| config.set(name, &value).map_err(ConfigError::Invalid);
        if let Some(port) = flags.port {
            set("port", port.to_string())?;
        }
        if let Some(bind) = &flags.bind {
            set("bind", bind.join(" "))?;
        }
        if let Some(n) = flags.databases {
            set("databases", n.to_string())?;
        }
        if let Some(n) = flags.maxclients {
            set("maxclients", n.to_string())?;
        }
        if let Some(port) = flags.grpc_port {
            set("grpc-port", port.to_string())?;
        }
        if let Some(p) = &flags.requirepass {
            set("requirepass", p.clone())?;
        }
        if let Some(l) = &flags.loglevel {
            set("loglevel", l.clone())?;
        }
        if let Some(d) = &flags.dir {
            set("dir", d.clone())?;
        }
        if let Some(f) = &flags.dbfilename {
            set("dbfilename", f.clone())?;
        }
        if let Some(r) = &flags.replicaof {
            set("replicaof", r.join(" "))?;
        }
        if let Some(p) = &flags.masterauth {
            set("masterauth", p.clone())?;
        }
        // redis-server reads its command line as more lines of the file.
        config.reading = true;
        for pair in flags.set.chunks(2) {
            if let [name, value] = pair {
                config.set(name, value).map_err(ConfigError::Invalid)?;
            }
        }
        config.reading = false;
        Ok(config)
    }

    /// Applies redis.conf lines: `name value...`, `#` comments, blank lines.
    pub fn load_file(&mut self, text: &str) -> Result<(), ConfigError> {
        self.reading = true;
        let loaded = self.load_lines(text);
        self.reading = false;
        loaded
    }

    fn load_lines(&mut self, text: &str) -> Result<(), ConfigError> {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let args = resp::split_args(line.as_bytes()).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "line {}: unbalanced quotes in configuration line",
                    n + 1
                ))
            })?;
            let Some((name, values)) = args.split_first() else {
                continue;
            };
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            let value: Vec<String> = values
                .iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect();
            self.set(&name, &value.join(" "))
                .map_err(|e| ConfigError::Invalid(format!("line {}: {e}", n + 1)))?;
        }
        Ok(())
    }

    /// A parameter's value, if the parameter exists.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// `notify-keyspace-events` as keyspace event class bits.
    pub fn notify_classes(&self) -> u32 {
        self.notify_classes
    }

    /// A numeric parameter.
    pub fn get_i64(&self, name: &str) -> i64 {
        self.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// The names and values of parameters matching a glob `pattern`. A
    /// pattern with a wildcard leaves out the [`HIDDEN`] ones, as Redis's
    /// CONFIG GET does; their exact names still match.
    pub fn matching(&self, pattern: &[u8]) -> Vec<(&'static str, &str)> {
        let glob = pattern.iter().any(|b| matches!(b, b'*' | b'?' | b'['));
        self.params
            .iter()
            .filter(|(name, _)| !(glob && HIDDEN.contains(name)))
            .filter(|(name, _)| store::glob::matches(pattern, name.as_bytes(), true))
            .map(|(name, value)| (*name, value.as_str()))
            .collect()
    }

    /// Whether CONFIG SET may change `name` while running.
    pub fn is_mutable(name: &str) -> Option<bool> {
        PARAMS.iter().find(|p| p.0 == name).map(|p| p.3)
    }

    /// Sets a parameter after checking its value; the error is Redis's
    /// reason text.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let Some(&(key, _, kind, _)) = PARAMS.iter().find(|p| p.0 == name) else {
            return Err(format!(
                "Unknown option or number of arguments for CONFIG SET - '{name}'"
            ));
        };
        let canonical = match kind {
            Kind::Text if key == "dir" => self.resolve_dir(value)?,
            Kind::Text if key == "save" => self.save_points(value)?,
            Kind::Text if key == "client-output-buffer-limit" => self.output_limits(value)?,
            Kind::Text if key == "notify-keyspace-events" => {
                let text = keyspace_event_classes(value)?;
                self.notify_classes = crate::notify::classes(value);
                text
            }
            Kind::Text if key == "dbfilename" && value.contains('/') => {
                return Err("dbfilename can't be a path, just a filename".to_string());
            }
            Kind::Text if key == "appendfilename" || key == "appenddirname" => {
                let what = if key == "appendfilename" {
                    "filename"
                } else {
                    "dirname"
                };
                if value.is_empty() {
                    return Err(format!("{key} can't be empty"));
                }
                if value.contains('/') {
                    return Err(format!("{key} can't be a path, just a {what}"));
                }
                value.to_string()
            }
            Kind::Text => value.to_string(),
            Kind::Bool => match value.to_ascii_lowercase().as_str() {
                // A setting Ember would not act on never claims to be on.
                "yes" if key == "daemonize" => {
                    return Err(
                        "Ember does not daemonize: run it under a service manager".to_string()
                    );
                }
                "yes" => "yes".to_string(),
                "no" => "no".to_string(),
                _ => return Err("argument must be 'yes' or 'no'".to_string()),
            },
            Kind::Enum(words) => {
                let lower = value.to_ascii_lowercase();
                if !words.contains(&lower.as_str()) {
                    // Redis's words only, so that the error is Redis's
                    // byte for byte; Ember's own values are in the docs.
                    let redis: Vec<&str> = words
                        .iter()
                        .copied()
                        .filter(|w| !EMBER_ONLY_VALUES.contains(w))
                        .collect();
                    return Err(format!(
                        "argument(s) must be one of the following: {}",
                        redis.join(", ")
                    ));
                }
                lower
            }
            Kind::Int(min, max) => {
                let n = parse_memory(value)
                    .ok_or_else(|| "argument couldn't be parsed into an integer".to_string())?;
                if n < min || n > max {
                    return Err(format!(
                        "argument must be between {min} and {max} inclusive"
                    ));
                }
                n.to_string()
            }
            Kind::MemoryOrPercent => {
                // Redis's order: a memory value, else a percentage, else
                // its error; then its bounds (-100% to SSIZE_MAX).
                if let Some(n) = parse_memory(value).filter(|n| *n >= 0) {
                    n.to_string()
                } else if let Some(p) = value
                    .strip_suffix('%')
                    .filter(|p| !p.is_empty())
                    .and_then(|p| resp::parse_int(p.as_bytes()))
                    .filter(|p| *p >= 0)
                {
                    if p > 100 {
                        return Err("percentage argument must be less or equal to 100".to_string());
                    }
                    // Redis stores it negated: 0% is 0.
                    if p == 0 {
                        "0".to_string()
                    } else {
                        format!("{p}%")
                    }
                } else {
                    return Err("argument must be a memory or percent value".to_string());
                }
            }
            Kind::Percentiles => {
                let mut out = Vec::new();
                for word in value.split_ascii_whitespace() {
                    let p = word
                        .parse::<f64>()
                        .ok()
                        .filter(|p| !p.is_nan())
                        .ok_or_else(|| {
                            "Invalid latency-tracking-info-percentiles parameters".to_string()
                        })?;
                    if !(0.0..=100.0).contains(&p) {
                        return Err("latency-tracking-info-percentiles parameters should sit between [0.0,100.0]".to_string());
                    }
                    out.push(format_percentile(p));
                }
                out.join(" ")
            }
        };
        self.params.insert(key, canonical.clone());
        for (a, b) in ALIASES {
            if *a == key {
                self.params.insert(b, canonical.clone());
            } else if *b == key {
                self.params.insert(a, canonical.clone());
            }
        }
        Ok(())
    }
}

/// redis-server's way of giving any parameter on the command line,
/// `--name value...` (the words up to the next `--`), for every parameter
/// CONFIG knows that has no flag of its own: rewritten as `--set name
/// value` for the flag parser. Everything else is left as it is.
pub fn redis_style_args(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    const OWN: &[&str] = &[
        "port",
        "bind",
        "databases",
        "maxclients",
        "requirepass",
        "loglevel",
        "replicaof",
        "masterauth",
        "threads",
        "dir",
        "dbfilename",
        "grpc-port",
        "set",
        "help",
        "version",
    ];
    let mut out = Vec::new();
    let mut args = args.into_iter().peekable();
    while let Some(arg) = args.next() {
        let name = arg
            .to_str()
            .and_then(|a| a.strip_prefix("--"))
            .map(str::to_ascii_lowercase);
        match name {
            Some(name) if !OWN.contains(&name.as_str()) && Config::is_mutable(&name).is_some() => {
                let mut words = Vec::new();
                while let Some(next) = args.peek() {
                    if next.to_str().is_some_and(|n| n.starts_with("--")) {
                        break;
                    }
                    words.push(next.to_string_lossy().into_owned());
                    args.next();
                }
                out.push("--set".into());
                out.push(name.into());
                out.push(words.join(" ").into());
            }
            _ => out.push(arg),
        }
    }
    out
}

/// A percentile as Redis prints one: `%f`, then trailing zeros and a
/// trailing point dropped (`99.900000` is `99.9`, `50.000000` is `50`).
pub(crate) fn format_percentile(p: f64) -> String {
    let text = format!("{p:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl Config {
    /// `save`: pairs of seconds (at least 1) and changes (at least 0), or
    /// `""` for none, in Redis's canonical form. Read from a file or the
    /// command line, the lines add up, the first replacing the default
    /// (Redis's `setConfigSaveOption`).
    fn save_points(&mut self, value: &str) -> Result<String, String> {
        let words: Vec<&str> = value.split_ascii_whitespace().collect();
        if !words.len().is_multiple_of(2) {
            return Err("Invalid save parameters".into());
        }
        let mut points = Vec::new();
        for (i, word) in words.iter().enumerate() {
            // strtoll with nothing after the number (leading zeros and a
            // sign allowed).
            let n = word
                .parse::<i64>()
                .ok()
                .filter(|&n| n >= if i % 2 == 0 { 1 } else { 0 })
                .ok_or_else(|| "Invalid save parameters".to_string())?;
            points.push(if i % 2 == 0 {
                n.to_string()
            } else {
                // Redis keeps the count in an int.
                (n as i32).to_string()
            });
        }
        let mut text = points.join(" ");
        if self.reading {
            if self.save_read && !text.is_empty() {
                let before = self.get("save").unwrap_or_default();
                if !before.is_empty() {
                    text = format!("{before} {text}");
                }
            } else if self.save_read && value.is_empty() {
                text = String::new();
            }
            self.save_read = true;
        }
        Ok(text)
    }

    /// The save points, `(seconds, changes)` pairs.
    pub(crate) fn save_points_list(&self) -> Vec<(i64, i64)> {
        let words: Vec<i64> = self
            .get("save")
            .unwrap_or_default()
            .split_ascii_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        words.chunks_exact(2).map(|p| (p[0], p[1])).collect()
    }

    /// The file the configuration was read from.
    pub(crate) fn file(&self) -> Option<&std::path::Path> {
        self.file.as_deref()
    }

    /// `maxmemory-clients` as Redis stores it: bytes, or minus a percentage
    /// of `maxmemory`.
    pub(crate) fn maxmemory_clients(&self) -> i64 {
        let value = self.get("maxmemory-clients").unwrap_or("0");
        match value.strip_suffix('%') {
            Some(p) => -p.parse::<i64>().unwrap_or(0),
            None => value.parse().unwrap_or(0),
        }
    }

    /// The percentiles INFO's `latencystats` reports.
    pub(crate) fn latency_percentiles(&self) -> Vec<f64> {
        self.get("latency-tracking-info-percentiles")
            .unwrap_or("")
            .split_ascii_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect()
    }

    /// `dir` as Redis's `chdir` would take it: relative to the current
    /// `dir`, which must exist; stored absolute, as CONFIG GET shows it.
    fn resolve_dir(&self, value: &str) -> Result<String, String> {
        let base = std::path::Path::new(self.get("dir").unwrap_or("."));
        let dir = base.join(value);
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err("Not a directory".to_string()),
            Err(e) => return Err(io_reason(&e)),
        }
        let dir = std::fs::canonicalize(&dir).map_err(|e| io_reason(&e))?;
        Ok(dir.display().to_string())
    }
}

/// An I/O error as C's `strerror` words it (Redis's config errors do).
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "No such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "Permission denied".to_string(),
        _ => e.to_string(),
    }
}

impl Config {
    /// `client-output-buffer-limit`: `class hard soft seconds` groups for
    /// some of the classes (normal, replica or slave, pubsub), merged into
    /// the current value, in Redis's canonical form.
    fn output_limits(&self, value: &str) -> Result<String, String> {
        let current = self
            .get("client-output-buffer-limit")
            .unwrap_or_default()
            .to_string();
        let mut classes: Vec<(&'static str, [i64; 3])> = Vec::new();
        merge_output_limits(&current, &mut classes)?;
        merge_output_limits(value, &mut classes)?;
        let mut out = Vec::new();
        for class in ["normal", "slave", "pubsub"] {
            if let Some((_, [hard, soft, secs])) = classes.iter().find(|(c, _)| *c == class) {
                out.push(format!("{class} {hard} {soft} {secs}"));
            }
        }
        Ok(out.join(" "))
    }

    /// `client-output-buffer-limit pubsub`: hard and soft bytes (0: none)
    /// and soft seconds.
    pub fn pubsub_output_limits(&self) -> (i64, i64, i64) {
        let text = self.get("client-output-buffer-limit").unwrap_or_default();
        let words: Vec<&str> = text.split_whitespace().collect();
        let number = |g: &[&str], i: usize| g.get(i).and_then(|w| w.parse().ok()).unwrap_or(0);
        words
            .chunks(4)
            .find(|g| g[0] == "pubsub")
            .map_or((0, 0, 0), |g| (number(g, 1), number(g, 2), number(g, 3)))
    }

    /// `client-output-buffer-limit normal`: hard and soft bytes (0: none)
    /// and soft seconds.
    pub fn normal_output_limits(&self) -> (i64, i64, i64) {
        let text = self.get("client-output-buffer-limit").unwrap_or_default();
        let words: Vec<&str> = text.split_whitespace().collect();
        let number = |g: &[&str], i: usize| g.get(i).and_then(|w| w.parse().ok()).unwrap_or(0);
        words
            .chunks(4)
            .find(|g| g[0] == "normal")
            .map_or((0, 0, 0), |g| (number(g, 1), number(g, 2), number(g, 3)))
    }

    /// The soft output limit for replicas' links: bytes (0: none) and
    /// seconds.
    pub fn replica_output_soft_limit(&self) -> (i64, i64) {
        let text = self.get("client-output-buffer-limit").unwrap_or_default();
        let words: Vec<&str> = text.split_whitespace().collect();
        let number = |g: &[&str], i: usize| g.get(i).and_then(|w| w.parse().ok()).unwrap_or(0);
        words
            .chunks(4)
            .find(|g| g[0] == "slave")
            .map_or((0, 0), |g| (number(g, 2), number(g, 3)))
    }

    /// The hard output limit for replicas' links, in bytes (0: none).
    pub fn replica_output_limit(&self) -> i64 {
        let text = self.get("client-output-buffer-limit").unwrap_or_default();
        let words: Vec<&str> = text.split_whitespace().collect();
        words
            .chunks(4)
            .find(|g| g[0] == "slave")
            .and_then(|g| g.get(1))
            .and_then(|w| w.parse().ok())
            .unwrap_or(0)
    }
}

/// `notify-keyspace-events`: the event classes in Redis's canonical form
/// (`A` for all of `g$lshzxetd`, else those and `n`; then `K`, `E`, `m`),
/// or Redis's error.
fn keyspace_event_classes(value: &str) -> Result<String, String> {
    // Redis's letters in its canonical order; `A` stands for all but n, m,
    // K and E.
    const ORDER: &str = "g$lshzxetdnKEm";
    const ALL: &str = "g$lshzxetd";
    let mut set = [false; ORDER.len()];
    for c in value.chars() {
        if c == 'A' {
            for a in ALL.chars() {
                set[ORDER.find(a).unwrap_or(0)] = true;
            }
            continue;
        }
        let Some(at) = ORDER.find(c) else {
            return Err("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into());
        };
        set[at] = true;
    }
    let has = |c: char| ORDER.find(c).is_some_and(|at| set[at]);
    let mut out = String::new();
    // As Redis writes it: `n` only beside single classes, not after `A`.
    if ALL.chars().all(has) {
        out.push('A');
    } else {
        out.extend(ALL.chars().chain(['n']).filter(|&c| has(c)));
    }
    out.extend("KEm".chars().filter(|&c| has(c)));
    Ok(out)
}

/// Parses `class hard soft seconds` groups into `classes`, replacing a
/// class given twice; Redis's error texts.
fn merge_output_limits(
    text: &str,
    classes: &mut Vec<(&'static str, [i64; 3])>,
) -> Result<(), String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if !words.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    for group in words.chunks(4) {
        let class = match group[0].to_ascii_lowercase().as_str() {
            "normal" => "normal",
            "replica" | "slave" => "slave",
            "pubsub" => "pubsub",
            _ => {
                return Err("Invalid client class specified in buffer limit configuration.".into());
            }
        };
        let mut limits = [0i64; 3];
        for (limit, word) in limits.iter_mut().zip(&group[1..]) {
            *limit = parse_memory(word).filter(|n| *n >= 0).ok_or(
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
            )?;
        }
        match classes.iter_mut().find(|(c, _)| *c == class) {
            Some(entry) => entry.1 = limits,
            None => classes.push((class, limits)),
        }
    }
    Ok(())
}

/// An integer with an optional memory unit, as redis.conf allows (`1mb`,
/// `512k`, `2gb`).
fn parse_memory(value: &str) -> Option<i64> {
    let lower = value.to_ascii_lowercase();
    let units: &[(&str, i64)] = &[
        ("kb", 1024),
        ("mb", 1024 * 1024),
        ("gb", 1024 * 1024 * 1024),
        ("k", 1000),
        ("m", 1000 * 1000),
        ("g", 1000 * 1000 * 1000),
        ("b", 1),
    ];
    for (suffix, mult) in units {
        if let Some(number) = lower.strip_suffix(suffix) {
            return resp::parse_int(number.as_bytes())?.checked_mul(*mult);
        }
    }
    resp::parse_int(lower.as_bytes())
}

/// Values Ember accepts beyond Redis's, left out of the list an invalid
/// value's error shows (which stays Redis's text).
const EMBER_ONLY_VALUES: &[&str] = &["allkeys-s3fifo"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_flags_and_aliases() {
        let mut c = Config::default();
        c.load_file("# comment\n\nport 7000\nsave \"\"\nlist-max-ziplist-size 16\n")
            .unwrap();
        assert_eq!(c.get("port"), Some("7000"));
        assert_eq!(c.get("save"), Some(""));
        assert_eq!(c.get("list-max-listpack-size"), Some("16"));
        assert!(c.load_file("nosuch 1").is_err());
        assert!(c.set("appendonly", "maybe").is_err());
        assert_eq!(c.set("proto-max-bulk-len", "2mb"), Ok(()));
        assert_eq!(c.get("proto-max-bulk-len"), Some("2097152"));
    }

    #[test]
    fn any_parameter_as_a_flag() {
        let args = [
            "ember-server",
            "--port",
            "7000",
            "--appendonly",
            "yes",
            "--save",
            "",
            "--SAVE",
            "60",
            "1",
            "--nosuch",
            "x",
        ];
        let out = redis_style_args(args.iter().map(std::ffi::OsString::from));
        let out: Vec<String> = out
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            out,
            [
                "ember-server",
                "--port",
                "7000",
                "--set",
                "appendonly",
                "yes",
                "--set",
                "save",
                "",
                "--set",
                "save",
                "60 1",
                "--nosuch",
                "x"
            ]
        );
    }

    #[test]
    fn dir_is_resolved_like_chdir() {
        let mut c = Config::default();
        let tmp = std::env::temp_dir().canonicalize().unwrap();
        c.set("dir", tmp.to_str().unwrap()).unwrap();
        assert_eq!(c.get("dir"), Some(tmp.to_str().unwrap()));
        // Relative to the current dir.
        c.set("dir", "..").unwrap();
        assert_eq!(c.get("dir"), tmp.parent().and_then(|p| p.to_str()));
        assert_eq!(
            c.set("dir", "/no/such/dir/here"),
            Err("No such file or directory".to_string())
        );
        assert!(c.set("dbfilename", "a/b.rdb").is_err());
        assert_eq!(c.set("dbfilename", "other.rdb"), Ok(()));
    }

    #[test]
    fn glob_matching_params() {
        let c = Config::default();
        let got: Vec<_> = c
            .matching(b"*max-*-entries")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(got.contains(&"set-max-intset-entries"));
        assert!(got.contains(&"hash-max-ziplist-entries"));
    }
}

//! Server commands: DBSIZE, FLUSHDB, FLUSHALL, SWAPDB, TIME, INFO, CONFIG,
//! COMMAND, SHUTDOWN, DEBUG, FUNCTION.

use std::sync::atomic::Ordering;

use resp::{Protocol, Request};

use super::connection::REDIS_VERSION;
use super::keys::{subcommand_arity, unknown_subcommand};
use super::{COMMANDS, CmdError, CmdResult, Command, Ctx, lookup};
use crate::args::{eq, parse_f64, parse_i64};
use crate::config::Config;

pub(super) fn dbsize(ctx: &mut Ctx<'_>, _req: &Request) -> CmdResult {
    let mut n = 0;
    let db = ctx.client.db;
    ctx.shards.for_each_shard(|s| n += s.dbs[db].len());
    ctx.reply.int(n as i64);
    Ok(())
}

/// The optional ASYNC or SYNC of FLUSHDB and FLUSHALL: whether the keys
/// are freed by the lazy-free thread (without a mode,
/// `lazyfree-lazy-user-flush` says).
fn flush_mode(ctx: &Ctx<'_>, req: &Request) -> Result<bool, CmdError> {
    match req.len() {
        1 => Ok(ctx.shared.lazyfree.user_flush.load(Ordering::Relaxed)),
        2 if eq(&req[1], "async") => Ok(true),
        2 if eq(&req[1], "sync") => Ok(false),
        _ => Err(CmdError::Syntax),
    }
}

pub(super) fn flushdb(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let lazy = flush_mode(ctx, req)?;
    let db = ctx.client.db;
    let mut locked = ctx.shards.lock_all();
    let mut removed = 0;
    let mut taken = Vec::new();
    for shard in locked.shards() {
        // A database never made in this shard is empty: not made now.
        let Some(d) = shard.dbs.get_mut(db) else {
            continue;
        };
        removed += d.len();
        if lazy {
            taken.push(d.take_all());
        } else {
            d.clear();
        }
        shard.dbs.reclaim();
    }
    drop(locked);
    if lazy {
        ctx.shared.lazyfree.free_contents(taken, removed);
    }
    // Each key removed is a change, as Redis counts them.
    ctx.shards.effects().changed_by(removed as u64);
    ctx.shared.tracking.flushed(ctx.shared);
    ctx.reply.ok();
    Ok(())
}

pub(super) fn flushall(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let lazy = flush_mode(ctx, req)?;
    let mut locked = ctx.shards.lock_all();
    let mut removed = 0;
    let mut taken = Vec::new();
    for shard in locked.shards() {
        removed += shard.dbs.iter().map(crate::db::Db::len).sum::<usize>();
        if lazy {
            taken.extend(shard.dbs.iter_mut().map(crate::db::Db::take_all));
        } else {
            shard.dbs.iter_mut().for_each(crate::db::Db::clear);
        }
        shard.dbs.reclaim();
    }
    drop(locked);
    if lazy {
        ctx.shared.lazyfree.free_contents(taken, removed);
    }
    // With save points set, Redis saves the empty dataset at once (a
    // BGSAVE running is stopped first), and counts one change.
    if crate::save::flushed_all(ctx.shared, &mut ctx.shards).is_err() {
        ctx.shards.effects().changed_by(removed as u64);
    }
    ctx.shared.tracking.flushed(ctx.shared);
    ctx.reply.ok();
    Ok(())
}

pub(super) fn swapdb(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let a = parse_i64(&req[1]).map_err(|_| CmdError::other("ERR invalid first DB index"))?;
    let b = parse_i64(&req[2]).map_err(|_| CmdError::other("ERR invalid second DB index"))?;
    let n = ctx.shards.databases() as i64;
    if a < 0 || a >= n || b < 0 || b >= n {
        return Err(CmdError::other("ERR DB index is out of range"));
    }
    let (a, b) = (a as usize, b as usize);
    let now = ctx.now;
    let mut locked = ctx.shards.lock_all();
    // Clients blocked in either database may now find their lists: the
    // databases note them, and they are served as the command ends.
    if a != b {
        for shard in locked.shards() {
            let (x, y) = shard.dbs.pair_mut(a, b);
            x.swap_contents(y, now);
        }
    }
    ctx.reply.ok();
    Ok(())
}

pub(super) fn time(ctx: &mut Ctx<'_>, _req: &Request) -> CmdResult {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    ctx.reply.array(2);
    ctx.reply.bulk(now.as_secs().to_string().as_bytes());
    ctx.reply.bulk(now.subsec_micros().to_string().as_bytes());
    Ok(())
}

/// INFO's sections, in Redis's order; `true` if part of the default set.
const SECTIONS: &[(&str, bool)] = &[
    ("server", true),
    ("clients", true),
    ("memory", true),
    ("persistence", true),
    ("stats", true),
    ("replication", true),
    ("cpu", true),
    ("modules", true),
    ("commandstats", false),
    ("errorstats", true),
    ("latencystats", false),
    ("cluster", true),
    ("keyspace", true),
];

pub(super) fn info(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    // What this connection ran before INFO, earlier in its batch, counts.
    ctx.client.stats.flush(&ctx.shared.stats);
    let asked: Vec<String> = req
        .iter()
        .skip(1)
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    let all = asked.iter().any(|s| s == "all" || s == "everything");
    let default = asked.is_empty() || asked.iter().any(|s| s == "default");
    let mut text = String::new();
    for (name, in_default) in SECTIONS {
        let wanted = all || (default && *in_default) || asked.iter().any(|s| s == name);
        if !wanted {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        info_section(ctx, name, &mut text);
    }
    ctx.reply.verbatim(text.as_bytes());
    Ok(())
}

fn info_section(ctx: &mut Ctx<'_>, name: &str, out: &mut String) {
    let shared = ctx.shared;
    let stats = &shared.stats;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let uptime = shared.started.elapsed().as_secs();
    let mut w = |line: String| {
        out.push_str(&line);
        out.push_str("\r\n");
    };
    match name {
        "server" => {
            w("# Server".into());
            w(format!("redis_version:{REDIS_VERSION}"));
            w("redis_git_sha1:00000000".into());
            w("redis_git_dirty:0".into());
            w(format!(
                "redis_build_id:ember-{}",
                env!("CARGO_PKG_VERSION")
            ));
            w("redis_mode:standalone".into());
            w(format!("os:{}", os_name()));
            w("arch_bits:64".into());
            w("monotonic_clock:POSIX clock_gettime".into());
            w("multiplexing_api:tokio".into());
            w("atomicvar_api:c11-builtin".into());
            // Redis names the compiler it was built with; Ember has none
            // of gcc, and says so as Redis does when built without it.
            w("gcc_version:0.0.0".into());
            w(format!("ember_version:{}", env!("CARGO_PKG_VERSION")));
            w(format!("process_id:{}", std::process::id()));
            w("process_supervised:no".into());
            w(format!("run_id:{}", shared.run_id));
            w(format!("tcp_port:{}", shared.port));
            let now_us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros());
            w(format!("server_time_usec:{now_us}"));
            w(format!("uptime_in_seconds:{uptime}"));
            w(format!("uptime_in_days:{}", uptime / 86_400));
            let hz = shared.config_i64("hz");
            w(format!("hz:{hz}"));
            w(format!("configured_hz:{hz}"));
            // Redis's LRU clock: seconds, in 24 bits.
            w(format!("lru_clock:{}", crate::db::lru_clock() & 0xFF_FFFF));
            let exe = std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "ember-server".into());
            w(format!("executable:{exe}"));
            let file = shared
                .config
                .lock()
                .ok()
                .and_then(|c| c.file().map(|f| f.display().to_string()));
            w(format!("config_file:{}", file.unwrap_or_default()));
            w("io_threads_active:0".into());
        }
        "clients" => {
            let n = shared.clients.lock().map(|c| c.len()).unwrap_or(0);
            w("# Clients".into());
            w(format!("connected_clients:{n}"));
            w("cluster_connections:0".into());
            w(format!("maxclients:{}", shared.config_i64("maxclients")));
            w("client_recent_max_input_buffer:0".into());
            w("client_recent_max_output_buffer:0".into());
            w(format!("blocked_clients:{}", load(&stats.blocked_clients)));
            let tracking = shared.tracking.figures().0;
            w(format!("tracking_clients:{tracking}"));
            w("clients_in_timeout_table:0".into());
        }
        "memory" => memory_info(ctx, &mut w),
        "persistence" => super::persistence::info(ctx, &mut w),
        "stats" => {
            let tracking = ctx.shared.tracking.figures();
            w("# Stats".into());
            let repl = &shared.repl;
            let (ops, kin, kout) = stats
                .rates
                .lock()
                .map(|r| (r.rate(0), r.rate(1) / 1024.0, r.rate(2) / 1024.0))
                .unwrap_or_default();
            let lines: Vec<(&str, String)> = vec![
                (
                    "total_connections_received",
                    load(&stats.connections_received).to_string(),
                ),
                (
                    "total_commands_processed",
                    load(&stats.commands_processed).to_string(),
                ),
                (
                    "instantaneous_ops_per_sec",
                    format!("{}", ops.round() as u64),
                ),
                (
                    "total_net_input_bytes",
                    load(&stats.net_input_bytes).to_string(),
                ),
                (
                    "total_net_output_bytes",
                    load(&stats.net_output_bytes).to_string(),
                ),
                ("total_net_repl_input_bytes", "0".into()),
                ("total_net_repl_output_bytes", "0".into()),
                ("instantaneous_input_kbps", format!("{kin:.2}")),
                ("instantaneous_output_kbps", format!("{kout:.2}")),
                ("instantaneous_input_repl_kbps", "0.00".into()),
                ("instantaneous_output_repl_kbps", "0.00".into()),
                (
                    "rejected_connections",
                    load(&stats.rejected_connections).to_string(),
                ),
                ("sync_full", repl.stat(&repl.sync_full).to_string()),
                (
                    "sync_partial_ok",
                    repl.stat(&repl.sync_partial_ok).to_string(),
                ),
                (
                    "sync_partial_err",
                    repl.stat(&repl.sync_partial_err).to_string(),
                ),
                (
                    "expired_keys",
                    // The expiry cycle's deletions and those of commands
                    // that met a key past its deadline, as Redis counts
                    // (the keyspace counts both).
                    shared.keyspace.expired_count().to_string(),
                ),
                ("expired_stale_perc", "0.00".into()),
                ("expired_time_cap_reached_count", "0".into()),
                ("expire_cycle_cpu_milliseconds", "0".into()),
                ("evicted_keys", load(&stats.evicted_keys).to_string()),
                (
                    "evicted_clients",
                    load(&shared.client_memory.evicted).to_string(),
                ),
                ("total_eviction_exceeded_time", "0".into()),
                ("current_eviction_exceeded_time", "0".into()),
                ("keyspace_hits", load(&stats.keyspace_hits).to_string()),
                ("keyspace_misses", load(&stats.keyspace_misses).to_string()),
                (
                    "pubsub_channels",
                    ctx.shared.pubsub.channel_count().to_string(),
                ),
                (
                    "pubsub_patterns",
                    ctx.shared.pubsub.pattern_count().to_string(),
                ),
                (
                    "pubsubshard_channels",
                    ctx.shared.pubsub.shard_channel_count().to_string(),
                ),
                // BGSAVE copies instead of forking.
                ("latest_fork_usec", "0".into()),
                ("total_forks", "0".into()),
                // MIGRATE keeps no connections open.
                ("migrate_cached_sockets", "0".into()),
                ("slave_expires_tracked_keys", "0".into()),
                ("active_defrag_hits", "0".into()),
                ("active_defrag_misses", "0".into()),
                ("active_defrag_key_hits", "0".into()),
                ("active_defrag_key_misses", "0".into()),
                ("total_active_defrag_time", "0".into()),
                ("current_active_defrag_time", "0".into()),
                ("tracking_total_keys", tracking.1.to_string()),
                ("tracking_total_items", tracking.2.to_string()),
                ("tracking_total_prefixes", tracking.3.to_string()),
                ("unexpected_error_replies", "0".into()),
                (
                    "total_error_replies",
                    load(&stats.error_replies).to_string(),
                ),
                ("dump_payload_sanitizations", "0".into()),
                (
                    "total_reads_processed",
                    load(&stats.reads_processed).to_string(),
                ),
                (
                    "total_writes_processed",
                    load(&stats.writes_processed).to_string(),
                ),
                ("io_threaded_reads_processed", "0".into()),
                ("io_threaded_writes_processed", "0".into()),
                ("reply_buffer_shrinks", "0".into()),
                ("reply_buffer_expands", "0".into()),
            ];
            for (name, value) in lines {
                w(format!("{name}:{value}"));
            }
        }
        "replication" => super::replication::info(ctx, &mut w),
        "cpu" => {
            let (user, sys) = cpu_times();
            w("# CPU".into());
            w(format!("used_cpu_sys:{sys:.6}"));
            w(format!("used_cpu_user:{user:.6}"));
            w("used_cpu_sys_children:0.000000".into());
            w("used_cpu_user_children:0.000000".into());
            // The thread that runs this command stands for Redis's main
            // thread: Ember runs commands on several.
            let (user, sys) = thread_cpu_times();
            w(format!("used_cpu_sys_main_thread:{sys:.6}"));
            w(format!("used_cpu_user_main_thread:{user:.6}"));
        }
        "commandstats" => {
            w("# Commandstats".into());
            for (name, s) in super::STAT_NAMES.iter().zip(stats.commands.iter()) {
                let (calls, usec) = (load(&s.calls), load(&s.usec));
                let (rejected, failed) = (load(&s.rejected), load(&s.failed));
                if calls + rejected == 0 {
                    continue;
                }
                let per_call = if calls == 0 {
                    0.0
                } else {
                    usec as f64 / calls as f64
                };
                w(format!(
                    "cmdstat_{name}:calls={calls},usec={usec},usec_per_call={per_call:.2},rejected_calls={rejected},failed_calls={failed}"
                ));
            }
        }
        "errorstats" => {
            w("# Errorstats".into());
            if let Ok(errors) = stats.errors.lock() {
                for (code, count) in errors.iter() {
                    w(format!("errorstat_{code}:count={count}"));
                }
            }
        }
        "latencystats" => {
            w("# Latencystats".into());
            if stats.latency_tracking.load(Ordering::Relaxed) {
                let percentiles = shared
                    .config
                    .lock()
                    .map(|c| c.latency_percentiles())
                    .unwrap_or_default();
                let labels: Vec<String> = percentiles
                    .iter()
                    .map(|p| crate::config::format_percentile(*p))
                    .collect();
                for (name, h) in super::STAT_NAMES.iter().zip(stats.latency.iter()) {
                    let Some(values) = h.percentiles(&percentiles) else {
                        continue;
                    };
                    let fields: Vec<String> = labels
                        .iter()
                        .zip(values)
                        .map(|(l, ns)| format!("p{l}={:.3}", ns as f64 / 1000.0))
                        .collect();
                    w(format!(
                        "latency_percentiles_usec_{name}:{}",
                        fields.join(",")
                    ));
                }
            }
        }
        // No modules, and never in cluster mode: client libraries' test
        // harnesses and monitoring tools read `cluster_enabled`.
        "modules" => w("# Modules".into()),
        "cluster" => {
            w("# Cluster".into());
            w("cluster_enabled:0".into());
        }
        "keyspace" => {
            w("# Keyspace".into());
            let databases = ctx.shards.databases();
            let mut counts = vec![(0usize, 0usize); databases];
            ctx.shards.for_each_shard(|s| {
                for (i, db) in s.dbs.iter().enumerate() {
                    counts[i].0 += db.len();
                    counts[i].1 += db.volatile_len();
                }
            });
            for (i, (keys, expires)) in counts.into_iter().enumerate() {
                if keys > 0 {
                    w(format!("db{i}:keys={keys},expires={expires},avg_ttl=0"));
                }
            }
        }
        _ => {}
    }
}

fn human_bytes(n: u64) -> String {
    let units = ["B", "K", "M", "G", "T"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < units.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else {
        format!("{v:.2}{}", units[unit])
    }
}

/// User and system CPU seconds, from /proc.
/// The `os` field: the kernel's name, release and machine, as uname
/// gives them to Redis.
fn os_name() -> String {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/proc/sys/kernel/{f}"))
            .map(|s| s.trim().to_string())
            .ok()
    };
    match (read("ostype"), read("osrelease")) {
        (Some(os), Some(release)) => format!("{os} {release} {}", std::env::consts::ARCH),
        _ => format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
    }
}

/// INFO's memory section: `used_memory` is what the counted allocator
/// holds (see `memory.rs`), the `allocator_*` figures jemalloc's own.
fn memory_info(ctx: &Ctx<'_>, w: &mut impl FnMut(String)) {
    let shared = ctx.shared;
    let figures = crate::memory::Figures::read(shared);
    let (used, peak, startup, backlog) =
        (figures.used, figures.peak, figures.startup, figures.backlog);
    let overhead = figures.overhead();
    let dataset = figures.dataset();
    let percent = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 * 100.0 / whole as f64
        }
    };
    let total = system_memory();
    let maxmemory = shared.config_i64("maxmemory").max(0) as u64;
    w("# Memory".into());
    w(format!("used_memory:{used}"));
    w(format!("used_memory_human:{}", human_bytes(used)));
    w(format!("used_memory_rss:{}", figures.rss));
    w(format!(
        "used_memory_rss_human:{}",
        human_bytes(figures.rss)
    ));
    w(format!("used_memory_peak:{peak}"));
    w(format!("used_memory_peak_human:{}", human_bytes(peak)));
    w(format!("used_memory_peak_perc:{:.2}%", percent(used, peak)));
    w(format!("used_memory_overhead:{overhead}"));
    w(format!("used_memory_startup:{startup}"));
    w(format!("used_memory_dataset:{dataset}"));
    w(format!(
        "used_memory_dataset_perc:{:.2}%",
        percent(dataset, used - startup)
    ));
    w(format!(
        "allocator_allocated:{}",
        figures.allocator.allocated
    ));
    w(format!("allocator_active:{}", figures.allocator.active));
    w(format!("allocator_resident:{}", figures.allocator.resident));
    w(format!("total_system_memory:{total}"));
    w(format!("total_system_memory_human:{}", human_bytes(total)));
    // Scripts' figures from the Lua engines (EVAL's and the functions').
    let lua = shared.scripts.memory();
    let (libraries, functions) = shared.scripts.functions.counts();
    let vm_functions = shared.scripts.functions.memory();
    let (scripts, bodies) = (shared.scripts.cached(), shared.scripts.bodies());
    for name in [
        "used_memory_lua",
        "used_memory_vm_eval",
        "used_memory_lua_human",
        "used_memory_scripts_eval",
        "number_of_cached_scripts",
        "number_of_functions",
        "number_of_libraries",
        "used_memory_vm_functions",
        "used_memory_vm_total",
        "used_memory_vm_total_human",
        "used_memory_functions",
        "used_memory_scripts",
        "used_memory_scripts_human",
    ] {
        let value = match name.trim_end_matches("_human") {
            "used_memory_lua" | "used_memory_vm_eval" => lua,
            "used_memory_vm_total" => lua + vm_functions,
            "used_memory_vm_functions" => vm_functions,
            "used_memory_scripts_eval" | "used_memory_scripts" => bodies,
            "number_of_cached_scripts" => scripts,
            "number_of_functions" => functions,
            "number_of_libraries" => libraries,
            _ => 0,
        };
        if name.ends_with("_human") {
            w(format!("{name}:{}", human_bytes(value)));
        } else {
            w(format!("{name}:{value}"));
        }
    }
    w(format!("maxmemory:{maxmemory}"));
    w(format!("maxmemory_human:{}", human_bytes(maxmemory)));
    w(format!(
        "maxmemory_policy:{}",
        shared.config_get("maxmemory-policy")
    ));
    for (name, (ratio, bytes)) in [
        ("allocator_frag", figures.allocator_frag()),
        ("allocator_rss", figures.allocator_rss()),
        ("rss_overhead", figures.rss_overhead()),
        ("mem_fragmentation", figures.fragmentation()),
    ] {
        w(format!("{name}_ratio:{ratio:.2}"));
        w(format!("{name}_bytes:{bytes}"));
    }
    w(format!("mem_not_counted_for_evict:{}", figures.not_counted));
    w(format!("mem_replication_backlog:{backlog}"));
    w(format!(
        "mem_total_replication_buffers:{}",
        figures.repl_buffers
    ));
    w(format!("mem_clients_slaves:{}", figures.clients_slaves));
    w(format!("mem_clients_normal:{}", figures.clients_normal));
    for name in ["mem_cluster_links", "mem_aof_buffer"] {
        w(format!("{name}:0"));
    }
    w("mem_allocator:jemalloc-5.3.0".into());
    w("active_defrag_running:0".into());
    w(format!(
        "lazyfree_pending_objects:{}",
        shared.lazyfree.pending()
    ));
    w(format!("lazyfreed_objects:{}", shared.lazyfree.freed()));
}

/// The machine's memory, from /proc/meminfo (0 where there is none).
fn system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(0)
}

/// The CPU time of the thread that calls it (user, system), in seconds.
fn thread_cpu_times() -> (f64, f64) {
    stat_times("/proc/thread-self/stat")
}

fn cpu_times() -> (f64, f64) {
    stat_times("/proc/self/stat")
}

fn stat_times(path: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 100.0
    };
    (ticks(11), ticks(12))
}

pub(super) fn config(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let sub = &req[1];
    if eq(sub, "get") {
        if req.len() < 3 {
            return Err(subcommand_arity("config", "get"));
        }
        let config = ctx
            .shared
            .config
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for pattern in req.iter().skip(2) {
            for (name, value) in config.matching(pattern) {
                if !pairs.iter().any(|(n, _)| *n == name) {
                    pairs.push((name, value));
                }
            }
        }
        ctx.reply.map(pairs.len());
        for (name, value) in pairs {
            ctx.reply.bulk(name.as_bytes());
            ctx.reply.bulk(value.as_bytes());
        }
    } else if eq(sub, "set") {
        if req.len() < 4 || !req.len().is_multiple_of(2) {
            return Err(subcommand_arity("config", "set"));
        }
        // All or nothing: apply to a copy, then swap it in.
        let mut config = ctx
            .shared
            .config
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        for i in (2..req.len()).step_by(2) {
            let name = String::from_utf8_lossy(&req[i]).to_ascii_lowercase();
            let value = String::from_utf8_lossy(&req[i + 1]).into_owned();
            // The same name twice (an alias and its new name are two, as
            // in Redis 7.0).
            let duplicate = (2..i)
                .step_by(2)
                .any(|j| req[j].eq_ignore_ascii_case(name.as_bytes()));
            if duplicate && Config::is_mutable(&name).is_some() {
                return Err(CmdError::other(format!(
                    "ERR CONFIG SET failed (possibly related to argument '{name}') - duplicate parameter"
                )));
            }
            match Config::is_mutable(&name) {
                None => {
                    return Err(CmdError::other(format!(
                        "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                    )));
                }
                Some(false) => {
                    return Err(CmdError::other(format!(
                        "ERR CONFIG SET failed (possibly related to argument '{name}') - can't set immutable config"
                    )));
                }
                Some(true) => {}
            }
            config.set(&name, &value).map_err(|reason| {
                CmdError::other(format!(
                    "ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}"
                ))
            })?;
        }
        ctx.shared
            .max_bulk_len
            .store(config.get_i64("proto-max-bulk-len"), Ordering::Relaxed);
        ctx.shared.stats.latency_tracking.store(
            config.get("latency-tracking") == Some("yes"),
            Ordering::Relaxed,
        );
        ctx.shared.set_memory_limit(&config);
        ctx.shared.encodings.update(&config);
        ctx.shared
            .repl
            .resize_backlog(config.get_i64("repl-backlog-size"));
        ctx.shared
            .repl
            .set_output_limit(config.replica_output_limit());
        ctx.shared
            .repl
            .set_output_soft_limit(config.replica_output_soft_limit());
        ctx.shared.pubsub.set_limits(config.pubsub_output_limits());
        ctx.shared.output_limits.set(config.normal_output_limits());
        ctx.shared.lazyfree.configure(&config);
        ctx.shared
            .keyspace
            .set_lazy(crate::lazyfree::LazyFree::keyspace_bits(&config));
        ctx.shared
            .keyspace
            .set_notify_classes(config.notify_classes());
        ctx.shared
            .tracking
            .set_max_keys(config.get_i64("tracking-table-max-keys"));
        ctx.shared.tracking.limit(ctx.shared);
        ctx.shared.repl.set_min_replicas(
            config.get_i64("min-replicas-to-write"),
            config.get_i64("min-replicas-max-lag"),
        );
        ctx.shared
            .repl
            .set_serve_stale(config.get("replica-serve-stale-data") == Some("yes"));
        ctx.shared.repl.aof.configure(&config);
        crate::aof::collect_history(ctx.shared);
        ctx.shared
            .scripts
            .watch
            .set_threshold(config.get_i64("busy-reply-threshold"));
        ctx.shared.persistence.configure(&config);
        let aof_on = config.get("appendonly") == Some("yes");
        if let Ok(mut current) = ctx.shared.config.lock() {
            *current = config;
        }
        // Turning the AOF on starts a rewrite that writes its base.
        if aof_on != ctx.shared.repl.aof.enabled()
            && let Err(e) = crate::aof::set_enabled(ctx.shared, &mut ctx.shards, aof_on)
        {
            tracing::warn!("{e}");
            if let Ok(mut current) = ctx.shared.config.lock() {
                let _ = current.set("appendonly", if aof_on { "no" } else { "yes" });
            }
            return Err(CmdError::other(
                "ERR CONFIG SET failed (possibly related to argument 'appendonly') - Unable to turn on AOF. Check server logs.",
            ));
        }
        ctx.reply.ok();
    } else if eq(sub, "resetstat") {
        if req.len() != 2 {
            return Err(subcommand_arity("config", "resetstat"));
        }
        // What ran before it, earlier in this batch, is reset too.
        ctx.client.stats.flush(&ctx.shared.stats);
        ctx.shared.stats.reset();
        ctx.shared.keyspace.reset_expired_count();
        ctx.shared.lazyfree.reset();
        ctx.reply.ok();
    } else if eq(sub, "rewrite") {
        return Err(CmdError::other(
            "ERR The server is running without a config file",
        ));
    } else {
        return Err(unknown_subcommand(&req[0], sub));
    }
    Ok(())
}

pub(super) fn command(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let Some(sub) = req.get(1) else {
        ctx.reply.array(COMMANDS.len());
        for c in COMMANDS {
            command_info(ctx, c);
        }
        return Ok(());
    };
    if eq(sub, "count") {
        ctx.reply.int(COMMANDS.len() as i64);
    } else if eq(sub, "list") {
        ctx.reply.array(COMMANDS.len());
        for c in COMMANDS {
            ctx.reply.bulk(c.name.as_bytes());
        }
    } else if eq(sub, "info") {
        let names: Vec<&[u8]> = req.iter().skip(2).collect();
        if names.is_empty() {
            ctx.reply.array(COMMANDS.len());
            COMMANDS.iter().for_each(|c| command_info(ctx, c));
        } else {
            ctx.reply.array(names.len());
            for name in names {
                match lookup(name) {
                    Some(c) => command_info(ctx, c),
                    None => ctx.reply.null_array(),
                }
            }
        }
    } else if eq(sub, "docs") {
        // Docs are summaries in Redis; clients use them for help text only.
        let names: Vec<&'static Command> = if req.len() == 2 {
            COMMANDS.iter().collect()
        } else {
            req.iter().skip(2).filter_map(lookup).collect()
        };
        ctx.reply.map(names.len());
        for c in names {
            ctx.reply.bulk(c.name.as_bytes());
            ctx.reply.map(3);
            ctx.reply.bulk(b"summary");
            ctx.reply.bulk(c.name.as_bytes());
            ctx.reply.bulk(b"since");
            ctx.reply.bulk(b"1.0.0");
            ctx.reply.bulk(b"group");
            ctx.reply.bulk(b"generic");
        }
    } else if eq(sub, "getkeys") {
        if req.len() < 4 {
            return Err(subcommand_arity("command", "getkeys"));
        }
        let Some(c) = lookup(&req[2]) else {
            return Err(CmdError::other("ERR Invalid command specified"));
        };
        if c.keys.0 <= 0 && c.flags & super::flags::MOVABLEKEYS == 0 {
            return Err(CmdError::other("ERR The command has no key arguments"));
        }
        let argc = req.len() - 2;
        if !c.arity_ok(argc) {
            return Err(CmdError::other(
                "ERR Invalid number of arguments specified for command",
            ));
        }
        // The keys as the command itself finds them (key positions, or
        // the parsing of a command with movable keys).
        let args: Vec<&[u8]> = req.iter().skip(2).collect();
        let sub_request = Request::from_args(&args);
        let mut keys = Vec::new();
        super::command_keys(c, &sub_request, &mut keys);
        // MIGRATE may name no key (Redis's CMD_NO_MANDATORY_KEYS).
        if keys.is_empty() && c.name != "migrate" {
            return Err(CmdError::other(
                "ERR Invalid arguments specified for command",
            ));
        }
        ctx.reply.array(keys.len());
        for key in keys {
            ctx.reply.bulk(key);
        }
    } else {
        return Err(unknown_subcommand(&req[0], sub));
    }
    Ok(())
}

/// One COMMAND INFO entry: name, arity, flags, first key, last key, step,
/// ACL categories, tips, key specs, subcommands.
fn command_info(ctx: &mut Ctx<'_>, c: &Command) {
    ctx.reply.array(10);
    ctx.reply.bulk(c.name.as_bytes());
    ctx.reply.int(i64::from(c.arity));
    let flags = c.flag_names();
    match ctx.reply.proto {
        Protocol::Resp2 => ctx.reply.array(flags.len()),
        _ => ctx.reply.set(flags.len()),
    }
    for f in flags {
        ctx.reply.simple(f);
    }
    let (first, last, step) = c.reported_keys();
    ctx.reply.int(i64::from(first));
    ctx.reply.int(i64::from(last));
    ctx.reply.int(i64::from(step));
    ctx.reply.array(0);
    ctx.reply.array(0);
    ctx.reply.array(0);
    ctx.reply.array(0);
}

pub(super) fn shutdown(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let mut flags = crate::save::ShutdownFlags::default();
    let (mut abort, mut now) = (false, false);
    for opt in req.iter().skip(1) {
        if eq(opt, "nosave") {
            flags.nosave = true;
        } else if eq(opt, "save") {
            flags.save = true;
        } else if eq(opt, "now") {
            now = true;
        } else if eq(opt, "force") {
            flags.force = true;
        } else if eq(opt, "abort") {
            abort = true;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let any = flags != crate::save::ShutdownFlags::default() || now;
    if (abort && any) || (flags.nosave && flags.save) {
        return Err(CmdError::Syntax);
    }
    if abort {
        // Ember never waits for lagging replicas, so no shutdown is
        // ever in progress for ABORT to cancel.
        return Err(CmdError::other("ERR No shutdown in progress."));
    }
    // A script past busy-reply-threshold is stopped, even one that
    // wrote: nothing is saved after it.
    if flags.nosave {
        ctx.shared.scripts.watch.force_kill();
    }
    if crate::save::prepare_shutdown(ctx.shared, &mut ctx.shards, flags).is_err() {
        return Err(CmdError::other(
            "ERR Errors trying to SHUTDOWN. Check logs.",
        ));
    }
    // No reply: the connection closes as the server stops.
    ctx.shared.shutdown.trigger();
    ctx.next = Some(super::Next::Close);
    Ok(())
}

pub(super) fn debug(ctx: &mut Ctx<'_>, req: &Request) -> CmdResult {
    let sub = &req[1];
    if eq(sub, "reload") {
        return super::persistence::debug_reload(ctx, req);
    }
    if eq(sub, "loadaof") && req.len() == 2 {
        return super::persistence::debug_loadaof(ctx);
    }
    if eq(sub, "aof-flush-sleep") && req.len() == 3 {
        // atoi, as Redis reads it: a negative or unparsable value is 0.
        let usec = resp::parse_int(&req[2]).unwrap_or(0).max(0) as u64;
        ctx.shared.repl.aof.set_flush_sleep(usec);
        ctx.reply.ok();
        return Ok(());
    }
    if eq(sub, "aof-fsync-hold") && req.len() == 3 {
        // Ember's own, for tests: the AOF's background fsync waits while
        // this is 1 (a disk that does not answer).
        ctx.shared.repl.aof.set_fsync_hold(&req[2][..] == b"1");
        ctx.reply.ok();
        return Ok(());
    }
    if eq(sub, "digest") && req.len() == 2 {
        return super::digest::debug_digest(ctx);
    }
    if eq(sub, "digest-value") {
        return super::digest::debug_digest_value(ctx, req);
    }
    if eq(sub, "object") && req.len() == 3 {
        return super::memory::debug_object(ctx, &req[2]);
    }
    if eq(sub, "sleep") && req.len() == 3 {
        let secs = parse_f64(&req[2])?;
        // Like Redis, DEBUG SLEEP blocks this connection; other clients go
        // on, since each connection has its own task.
        std::thread::sleep(std::time::Duration::from_secs_f64(secs.clamp(0.0, 3600.0)));
        ctx.reply.ok();
    } else if eq(sub, "set-active-expire") && req.len() == 3 {
        // Redis reads it with atoi: anything but a leading non-zero number
        // turns it off.
        let digits = req[2]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(req[2].len());
        let on = resp::parse_int(&req[2][..digits]).is_some_and(|n| n != 0);
        ctx.shared.active_expire.store(on, Ordering::Relaxed);
        ctx.reply.ok();
    } else if eq(sub, "pause-cron") && req.len() == 3 {
        // Redis's serverCron stops: here the background tick (eviction,
        // expiry, the clients' checks) skips its turns.
        let on = resp::parse_int(&req[2]).is_some_and(|n| n != 0);
        ctx.shared.cron_paused.store(on, Ordering::Relaxed);
        ctx.reply.ok();
    } else if eq(sub, "replybuffer") && req.len() == 4 {
        // Redis's cron resizes each client's reply buffer to its recent
        // peak; Ember's write buffer is given back after each flush that
        // leaves it large (`transport::Output`), with no cron to pause or
        // peak to reset. Accepted, with Redis's arguments.
        if eq(&req[2], "peak-reset-time") || eq(&req[2], "resizing") {
            ctx.reply.ok();
        } else {
            return Err(CmdError::Syntax);
        }
    } else if eq(sub, "log") || eq(sub, "quicklist-packed-threshold") {
        // Accepted for the test suite's sake; they change nothing here.
        ctx.reply.ok();
    } else {
        return Err(unknown_subcommand(&req[0], sub));
    }
    Ok(())
}

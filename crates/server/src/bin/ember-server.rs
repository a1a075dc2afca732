//! `ember-server`: run the server. `ember-server --help` lists the flags.

use clap::Parser;
use ember_server::{Config, Flags, Workers};
use tokio::net::TcpListener;

// jemalloc, counted: `used_memory` (see the library's `memory` module).
#[global_allocator]
static ALLOC: ember_server::Allocator = ember_server::Allocator;

fn main() -> std::process::ExitCode {
    // `--appendonly yes` and the like, as redis-server takes them.
    let flags = Flags::parse_from(ember_server::config::redis_style_args(std::env::args_os()));
    let config = match Config::from_flags(&flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("*** FATAL CONFIG FILE ERROR *** {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let level = match config.get("loglevel").unwrap_or("notice") {
        "debug" => "debug",
        "verbose" => "info",
        "warning" => "warn",
        _ => "info",
    };
    // Redis's `logfile`: "" is standard output; anything else a file
    // appended to. Colour only on a terminal.
    let logfile = config.get("logfile").unwrap_or_default().to_string();
    let (writer, ansi) = if logfile.is_empty() {
        use std::io::IsTerminal;
        (
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stdout),
            std::io::stdout().is_terminal(),
        )
    } else {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&logfile)
        {
            Ok(file) => (
                tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::sync::Mutex::new(file)),
                false,
            ),
            Err(e) => {
                // Redis's words when it cannot open its log.
                eprintln!("Can't open the log file: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(writer)
        .with_ansi(ansi)
        .init();
    // One thread per core but one: the kernel's network work (and, on a
    // small machine, the clients) needs a core too. On two cores, one
    // thread measured faster than two (docs/benchmarks.md).
    let threads = flags.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .saturating_sub(1)
            .max(1)
    });
    let workers = match Workers::start(threads) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("cannot start the worker threads: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // The main thread accepts connections, handles signals and runs the
    // background work; the workers serve the connections.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .on_thread_stop(ember_server::memory::flush_thread)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config, &workers))
}

async fn serve(config: Config, workers: &Workers) -> std::process::ExitCode {
    let port = config.get("port").unwrap_or("6379").to_string();
    let bind = config.get("bind").unwrap_or("127.0.0.1").to_string();
    let host = bind
        .split_whitespace()
        .next()
        .unwrap_or("127.0.0.1")
        .to_string();
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let listener = match TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("Could not create server TCP listening socket {addr}: {e}");
            // Redis's words, which test harnesses wait for to try another port.
            tracing::error!("Failed listening on port {port} (TCP), aborting.");
            return std::process::ExitCode::FAILURE;
        }
    };
    match ember_server::run_on_while_loading(listener, config, stop_signal(), Some(workers)).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Like Redis, refuse to serve a keyspace that is not the file's.
            tracing::error!("{e}. Unrecoverable error, aborting now.");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("Received SIGINT scheduling shutdown..."),
            _ = term.recv() => tracing::info!("Received SIGTERM scheduling shutdown..."),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

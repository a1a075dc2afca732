//! `ember-proxy`: a RESP server in front of an Ember fleet. `ember-proxy
//! --help` lists the flags; the fleet's are `ember-cli`'s.

use clap::Parser;
use client::Client;
use client::cli::FleetArgs;
use ember_proxy::ProxyConfig;
use tokio::net::TcpListener;
use transport::Shutdown;

#[derive(Debug, Parser)]
#[command(
    name = "ember-proxy",
    version,
    about = "Serves RESP to any Redis client in front of an Ember topology: R replica groups of S shards."
)]
struct Args {
    #[command(flatten)]
    fleet: FleetArgs,
    /// The port to listen on.
    #[arg(long, default_value_t = 7379)]
    port: u16,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// The password the proxy's own clients must give.
    #[arg(long, value_name = "PASSWORD")]
    requirepass: Option<String>,
    /// The most clients at once.
    #[arg(long, default_value_t = 10_000)]
    maxclients: usize,
    /// Threads serving clients [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let (topology, options) = match args.fleet.settings() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let addr = if args.bind.contains(':') {
            format!("[{}]:{}", args.bind, args.port)
        } else {
            format!("{}:{}", args.bind, args.port)
        };
        let listener = match TcpListener::bind(&addr).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("cannot listen on {addr}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        let client = match Client::connect(topology, options).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("cannot reach the fleet: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        let mut config = ProxyConfig::new();
        config.requirepass = args.requirepass;
        config.maxclients = args.maxclients;
        let shutdown = Shutdown::new();
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            stop_signal().await;
            tracing::info!("stopping: answering what clients sent, then exiting");
            stopper.trigger();
        });
        tracing::info!("ember-proxy listening on {addr}");
        ember_proxy::run(listener, client, config, shutdown).await;
        std::process::ExitCode::SUCCESS
    })
}

/// SIGINT or SIGTERM.
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

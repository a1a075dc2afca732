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
    /// Also serve the gRPC API (ember.v1.Cache, with health and reflection)
    /// on this port.
    #[arg(long)]
    grpc_port: Option<u16>,
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
        let mut grpc = None;
        if let Some(port) = args.grpc_port {
            let grpc_addr = if args.bind.contains(':') {
                format!("[{}]:{port}", args.bind)
            } else {
                format!("{}:{port}", args.bind)
            };
            let listener = match TcpListener::bind(&grpc_addr).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!("cannot listen on {grpc_addr}: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            tracing::info!("gRPC listening on {grpc_addr}");
            let stop = shutdown.clone();
            let client = client.clone();
            let password = config.requirepass.clone();
            grpc = Some(tokio::spawn(async move {
                let stopped = async move { stop.triggered().await };
                if let Err(e) = ember_proxy::serve_grpc(listener, client, password, stopped).await {
                    tracing::error!("{e}");
                }
            }));
        }
        ember_proxy::run(listener, client, config, shutdown).await;
        if let Some(grpc) = grpc {
            let _ = grpc.await;
        }
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

//! `ember-proxy`: a RESP server in front of an Ember fleet. `ember-proxy
//! --help` lists the flags; the fleet's are `ember-cli`'s.

use std::path::{Path, PathBuf};

use clap::Parser;
use client::Client;
use client::cli::FleetArgs;
use ember_proxy::{OutputLimit, ProxyConfig};
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
    /// A TOML file with the fleet (as `--topology` takes it: `replicas`,
    /// `write_policy`...) and a `[proxy]` table of this program's settings
    /// (`port`, `bind`, `requirepass`, `maxclients`, `threads`,
    /// `grpc_port`, `client_output_buffer_limit`); flags override it.
    #[arg(long, value_name = "FILE", conflicts_with = "topology")]
    config: Option<PathBuf>,
    /// The port to listen on [default: 7379].
    #[arg(long)]
    port: Option<u16>,
    /// The address to listen on [default: 127.0.0.1].
    #[arg(long)]
    bind: Option<String>,
    /// The password the proxy's own clients must give.
    #[arg(long, value_name = "PASSWORD")]
    requirepass: Option<String>,
    /// The most clients at once [default: 10000].
    #[arg(long)]
    maxclients: Option<usize>,
    /// Threads serving clients [default: one per core]; with 1, one
    /// current-thread runtime runs everything.
    #[arg(long)]
    threads: Option<usize>,
    /// Also serve the gRPC API (ember.v1.Cache, with health and reflection)
    /// on this port.
    #[arg(long)]
    grpc_port: Option<u16>,
    /// A subscribed client whose unsent output passes this is
    /// disconnected, as Redis does: 'pubsub <hard> <soft> <seconds>'
    /// [default: pubsub 32mb 8mb 60; 0 0 0 for none].
    #[arg(long, value_name = "LIMIT")]
    client_output_buffer_limit: Option<String>,
}

/// The `[proxy]` table of `--config`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxySection {
    port: Option<u16>,
    bind: Option<String>,
    requirepass: Option<String>,
    maxclients: Option<usize>,
    threads: Option<usize>,
    grpc_port: Option<u16>,
    client_output_buffer_limit: Option<String>,
}

/// Reads `--config`: the proxy's table, and the rest (the fleet) as TOML
/// text for the fleet's reader.
fn read_config(path: &Path) -> Result<(ProxySection, String), String> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("{name}: {}", e.to_string().trim_end()))?;
    let proxy = match table.remove("proxy") {
        Some(section) => section.try_into().map_err(|e: toml::de::Error| {
            format!("{name}: [proxy]: {}", e.to_string().trim_end())
        })?,
        None => ProxySection::default(),
    };
    let fleet = toml::to_string(&table).map_err(|e| format!("{name}: {e}"))?;
    Ok((proxy, fleet))
}

fn main() -> std::process::ExitCode {
    let mut args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let settings = match &args.config {
        Some(path) => read_config(path).and_then(|(proxy, fleet)| {
            args.port = args.port.or(proxy.port);
            args.bind = args.bind.take().or(proxy.bind);
            args.requirepass = args.requirepass.take().or(proxy.requirepass);
            args.maxclients = args.maxclients.or(proxy.maxclients);
            args.threads = args.threads.or(proxy.threads);
            args.grpc_port = args.grpc_port.or(proxy.grpc_port);
            args.client_output_buffer_limit = args
                .client_output_buffer_limit
                .take()
                .or(proxy.client_output_buffer_limit);
            let name = path.display().to_string();
            args.fleet.settings_with(Some((&name, &fleet)))
        }),
        None => args.fleet.settings(),
    };
    let (topology, options) = match settings {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let pubsub_limit = match args.client_output_buffer_limit.as_deref() {
        Some(text) => match text.parse::<OutputLimit>() {
            Ok(limit) => limit,
            Err(e) => {
                tracing::error!("{e}");
                return std::process::ExitCode::from(2);
            }
        },
        None => OutputLimit::PUBSUB,
    };
    let port = args.port.unwrap_or(7379);
    let bind = args.bind.clone().unwrap_or_else(|| "127.0.0.1".to_owned());
    // One thread: everything (the sessions, the fleet client's driver,
    // the accept loop) on one current-thread runtime, where a request's
    // hand-off from its session to the driver and back is a local wake
    // and each turn of the loop first runs every ready session and only
    // then the driver, as one event loop would (no LIFO slot to run the
    // driver after the first session, no second thread for the accept
    // loop, no work-stealing bookkeeping around each park).
    let mut runtime = match args.threads {
        Some(0 | 1) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if let Some(threads) = args.threads
        && threads > 1
    {
        runtime.worker_threads(threads);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let addr = if bind.contains(':') {
            format!("[{bind}]:{port}")
        } else {
            format!("{bind}:{port}")
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
        config.maxclients = args.maxclients.unwrap_or(10_000);
        config.pubsub_output_limit = pubsub_limit;
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
            let grpc_addr = if bind.contains(':') {
                format!("[{bind}]:{port}")
            } else {
                format!("{bind}:{port}")
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

//! `iee-ingest`: the ingest service on its own.

use anyhow::Context;
use clap::Parser;
use iee_config::{Layers, ServeFlags};
use iee_ingest::{IngestDeps, IngestNode, IngestServerConfig};
use iee_runtime::{GrpcServer, Shutdown};
use iee_store::Stores;
use iee_telemetry::MetricsRegistry;

// The ingest path allocates per event (decode, validate, encode); mimalloc cuts that cost
// measurably over the system allocator (see ARCHITECTURE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The IEE ingest service (TouchpointService).
#[derive(Debug, Parser)]
#[command(name = "iee-ingest", version)]
struct Cli {
    #[command(flatten)]
    flags: ServeFlags,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config: IngestServerConfig = iee_config::load(
        &Layers::standard(cli.flags.config.clone()),
        &cli.flags.overrides(),
    )?;
    if cli.flags.print_config {
        print!("{}", iee_config::to_toml(&config)?);
        return Ok(());
    }
    let _tracing = iee_telemetry::init_telemetry(&config.telemetry, "iee-ingest")?;
    config.client.install()?;

    let registry = MetricsRegistry::default();
    let shutdown = Shutdown::new();
    let stores = Stores::open(&config.store, config.cluster.shard_count)?;
    let node = IngestNode::build(
        config.ingest.clone(),
        &config.cluster,
        IngestDeps {
            stores,
            metrics: registry.clone(),
            shutdown: shutdown.clone(),
        },
    );
    if let Err(err) = node.readiness().await {
        tracing::warn!(error = %err, "event log not reachable yet; requests fail until it is");
    }
    let mut server = GrpcServer::bind(&config.server).await?;
    server.register_metrics(&registry);
    node.register(&mut server);
    iee_runtime::serve_metrics_until(&config.telemetry.metrics_listen, registry, &shutdown).await?;
    println!("listening on {}", server.local_addr());

    iee_runtime::serve_until_signal(server, shutdown)
        .await
        .context("grpc server")?;
    node.stop().await;
    Ok(())
}

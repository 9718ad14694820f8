//! `iee-predict`: the prediction service on its own.

use anyhow::Context;
use clap::Parser;
use iee_api::profile::{ProfileClient, RouteOptions};
use iee_config::{Layers, ServeFlags};
use iee_predict::{PredictDeps, PredictNode, PredictServerConfig};
use iee_runtime::{GrpcServer, Shutdown};
use iee_store::Stores;
use iee_telemetry::MetricsRegistry;

// Scoring allocates per request (features, encodings); mimalloc keeps that cheap.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The IEE prediction service (PredictionService).
#[derive(Debug, Parser)]
#[command(name = "iee-predict", version)]
struct Cli {
    #[command(flatten)]
    flags: ServeFlags,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config: PredictServerConfig = iee_config::load(
        &Layers::standard(cli.flags.config.clone()),
        &cli.flags.overrides(),
    )?;
    if cli.flags.print_config {
        print!("{}", iee_config::to_toml(&config)?);
        return Ok(());
    }
    let _tracing = iee_telemetry::init_telemetry(&config.telemetry, "iee-predict")?;
    config.client.install()?;
    anyhow::ensure!(
        !config.predict.profile_seeds.is_empty(),
        "predict.profile_seeds: at least one profile node address is required"
    );

    let registry = MetricsRegistry::default();
    let shutdown = Shutdown::new();
    let stores = Stores::open(&config.store, config.cluster.shard_count)?;
    let profiles = ProfileClient::connect(
        config.predict.profile_seeds.clone(),
        config.cluster.shard_count,
        RouteOptions::default(),
    )?;
    let mut server = GrpcServer::bind(&config.server).await?;
    server.register_metrics(&registry);
    let local = server.local_addr();
    let node = PredictNode::build(
        config.predict.clone(),
        &config.cluster,
        PredictDeps {
            stores,
            profiles,
            metrics: registry.clone(),
        },
    );
    node.register(&mut server);
    let consumer = if config.predict.consumer_name.is_empty() {
        iee_runtime::instance_name("predict", local.port())
    } else {
        config.predict.consumer_name.clone()
    };
    node.start(consumer);
    iee_runtime::serve_metrics_until(&config.telemetry.metrics_listen, registry, &shutdown).await?;
    println!("listening on {local}");

    iee_runtime::serve_until_signal(server, shutdown)
        .await
        .context("grpc server")?;
    node.stop().await;
    Ok(())
}

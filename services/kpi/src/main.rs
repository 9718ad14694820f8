//! `iee-kpi`: the KPI service on its own.

use anyhow::Context;
use clap::Parser;
use iee_config::{Layers, ServeFlags};
use iee_kpi::{KpiNode, KpiServerConfig};
use iee_runtime::{GrpcServer, Shutdown};
use iee_store::Stores;
use iee_telemetry::MetricsRegistry;

/// The IEE KPI service (KpiService).
#[derive(Debug, Parser)]
#[command(name = "iee-kpi", version)]
struct Cli {
    #[command(flatten)]
    flags: ServeFlags,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config: KpiServerConfig = iee_config::load(
        &Layers::standard(cli.flags.config.clone()),
        &cli.flags.overrides(),
    )?;
    if cli.flags.print_config {
        print!("{}", iee_config::to_toml(&config)?);
        return Ok(());
    }
    let _tracing = iee_telemetry::init_telemetry(&config.telemetry, "iee-kpi")?;
    config.client.install()?;
    let registry = MetricsRegistry::default();
    let shutdown = Shutdown::new();
    let stores = Stores::open(&config.store, config.cluster.shard_count)?;
    let mut server = GrpcServer::bind(&config.server).await?;
    server.register_metrics(&registry);
    let local = server.local_addr();
    let node = KpiNode::build(config.kpi.clone(), &config.cluster, stores, &registry);
    node.register(&mut server);
    node.start();
    iee_runtime::serve_metrics_until(&config.telemetry.metrics_listen, registry, &shutdown).await?;
    println!("listening on {local}");

    iee_runtime::serve_until_signal(server, shutdown)
        .await
        .context("grpc server")?;
    node.stop().await;
    Ok(())
}

//! `iee-profile`: the profile service on its own.

use anyhow::Context;
use clap::Parser;
use iee_config::{Layers, ServeFlags};
use iee_profile::{ProfileDeps, ProfileNode, ProfileServerConfig, default_node_id};
use iee_runtime::{GrpcServer, Shutdown};
use iee_store::Stores;
use iee_telemetry::MetricsRegistry;

// Profiles are decoded, folded and encoded per event; mimalloc keeps that cheap.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The IEE profile service (ProfileService).
#[derive(Debug, Parser)]
#[command(name = "iee-profile", version)]
struct Cli {
    #[command(flatten)]
    flags: ServeFlags,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config: ProfileServerConfig = iee_config::load(
        &Layers::standard(cli.flags.config.clone()),
        &cli.flags.overrides(),
    )?;
    if cli.flags.print_config {
        print!("{}", iee_config::to_toml(&config)?);
        return Ok(());
    }
    let _tracing = iee_telemetry::init_telemetry(&config.telemetry, "iee-profile")?;

    let registry = MetricsRegistry::default();
    let shutdown = Shutdown::new();
    let stores = Stores::open(&config.store, config.cluster.shard_count)?;
    let mut server = GrpcServer::bind(&config.server).await?;
    let local = server.local_addr();
    if config.profile.node_id.is_empty() {
        config.profile.node_id = default_node_id(local.port());
    }
    let address = if config.profile.advertise_address.is_empty() {
        local.to_string()
    } else {
        config.profile.advertise_address.clone()
    };
    let node = ProfileNode::build(
        config.profile.clone(),
        &config.cluster,
        ProfileDeps {
            stores,
            metrics: registry.clone(),
            shutdown: shutdown.clone(),
        },
    );
    node.register(&mut server);
    node.start(address);
    iee_runtime::serve_metrics_until(&config.telemetry.metrics_listen, registry, &shutdown).await?;
    println!("listening on {local}");

    iee_runtime::serve_until_signal(server, shutdown)
        .await
        .context("grpc server")?;
    node.stop().await;
    Ok(())
}

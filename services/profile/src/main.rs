//! `iee-profile`: the profile service on its own.

use anyhow::Context;
use clap::Parser;
use iee_config::{Layers, ServeFlags};
use iee_profile::{
    MembershipSource, ProfileDeps, ProfileNode, ProfileServerConfig, default_node_id,
};
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
    let mut telemetry = config.telemetry.clone();
    if config.profile.membership == MembershipSource::Kubernetes
        && !telemetry.log_filter.contains("kube_client")
    {
        // kube-client logs an error per failed request (every retry); the membership logs when
        // the watch starts failing and when it recovers, with the error.
        telemetry
            .log_filter
            .push_str(",kube_client::client::builder=off");
    }
    let _tracing = iee_telemetry::init_telemetry(&telemetry, "iee-profile")?;
    config.client.install()?;

    let registry = MetricsRegistry::default();
    let shutdown = Shutdown::new();
    let stores = Stores::open(&config.store, config.cluster.shard_count)?;
    // Membership from Redis heartbeats or the Kubernetes API; leases stay in the store.
    let stores = iee_profile::with_membership(&config.profile, stores)?;
    let mut server = GrpcServer::bind(&config.server).await?;
    server.register_metrics(&registry);
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

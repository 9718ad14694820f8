//! `iee-decide`: the decision service on its own.

use anyhow::Context;
use clap::Parser;
use iee_api::{
    ingest::TouchpointClient,
    predict::PredictClient,
    profile::{ProfileClient, RouteOptions},
};
use iee_config::{Layers, ServeFlags};
use iee_decide::{DecideDeps, DecideNode, DecideServerConfig};
use iee_runtime::{GrpcServer, Shutdown};
use iee_store::Stores;
use iee_telemetry::MetricsRegistry;

// Decisions allocate per request (features, rule values, records); mimalloc keeps that cheap.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The IEE decision service (DecisionService).
#[derive(Debug, Parser)]
#[command(name = "iee-decide", version)]
struct Cli {
    #[command(flatten)]
    flags: ServeFlags,
}

/// A lazily connected channel, so the service starts before its peers.
fn channel(field: &str, endpoint: &str) -> anyhow::Result<tonic::transport::Channel> {
    anyhow::ensure!(!endpoint.is_empty(), "{field}: required");
    let endpoint = iee_api::transport::endpoint(endpoint)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("{field}: {endpoint:?} is not a valid address"))?
        .tcp_nodelay(true)
        // Trusted peers: requests cancelled at the decision's deadline must not make HTTP/2
        // close the connection after 1,024 of them.
        .http2_max_local_error_reset_streams(None);
    Ok(iee_api::transport::connect_lazy(endpoint))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config: DecideServerConfig = iee_config::load(
        &Layers::standard(cli.flags.config.clone()),
        &cli.flags.overrides(),
    )?;
    if cli.flags.print_config {
        print!("{}", iee_config::to_toml(&config)?);
        return Ok(());
    }
    let _tracing = iee_telemetry::init_telemetry(&config.telemetry, "iee-decide")?;
    config.client.install()?;
    let decide = &config.decide;
    anyhow::ensure!(
        !decide.profile_seeds.is_empty(),
        "decide.profile_seeds: at least one profile node address is required"
    );
    let registry = MetricsRegistry::default();
    let shutdown = Shutdown::new();
    let stores = Stores::open(&config.store, config.cluster.shard_count)?;
    let profiles = ProfileClient::connect(
        decide.profile_seeds.clone(),
        config.cluster.shard_count,
        RouteOptions::default(),
    )?;
    let predict = PredictClient::from_channel(channel(
        "decide.predict_endpoint",
        &decide.predict_endpoint,
    )?);
    let ingest =
        TouchpointClient::from_channel(channel("decide.ingest_endpoint", &decide.ingest_endpoint)?);
    let mut server = GrpcServer::bind(&config.server).await?;
    server.register_metrics(&registry);
    let local = server.local_addr();
    let node = DecideNode::build(
        decide.clone(),
        &config.cluster,
        DecideDeps {
            stores,
            profiles,
            predict,
            ingest,
            metrics: registry.clone(),
            shutdown: shutdown.clone(),
        },
    );
    node.register(&mut server);
    node.start().await;
    iee_runtime::serve_metrics_until(&config.telemetry.metrics_listen, registry, &shutdown).await?;
    println!("listening on {local}");

    iee_runtime::serve_until_signal(server, shutdown)
        .await
        .context("grpc server")?;
    node.stop().await;
    Ok(())
}

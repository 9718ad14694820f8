//! `iee standalone`: composes every node on one gRPC server. [`Engine`] is that composition,
//! also used by `iee demo`.

use std::process::ExitCode;

use anyhow::Context;
use iee_config::{ClusterConfig, ConfigError, Layers, ServeFlags, Validate};
use iee_decide::{DecideConfig, DecideDeps, DecideNode};
use iee_ingest::{IngestConfig, IngestDeps, IngestNode};
use iee_kpi::{KPI_CONSUMER, KpiConfig, KpiNode};
use iee_predict::{PredictConfig, PredictDeps, PredictNode};
use iee_profile::{ProfileConfig, ProfileDeps, ProfileNode, default_node_id};
use iee_runtime::{GrpcServer, ServerConfig, Shutdown, wait_for_signal};
use iee_store::{StoreConfig, Stores};
use iee_telemetry::{MetricsRegistry, TelemetryConfig};
use serde::{Deserialize, Serialize};

/// Everything `iee standalone` reads: the sections of each service binary, once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct StandaloneConfig {
    /// Listener and shutdown.
    pub server: ServerConfig,
    /// Logs and metrics.
    pub telemetry: TelemetryConfig,
    /// Installation-wide settings.
    pub cluster: ClusterConfig,
    /// Storage backend (in-memory by default).
    pub store: StoreConfig,
    /// The ingest service.
    pub ingest: IngestConfig,
    /// The profile service.
    pub profile: ProfileConfig,
    /// The prediction service.
    pub predict: PredictConfig,
    /// The decision service.
    pub decide: DecideConfig,
    /// The KPI service.
    pub kpi: KpiConfig,
}

impl Validate for StandaloneConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.cluster.validate()?;
        self.store.validate()?;
        self.ingest.validate()?;
        self.profile.validate()?;
        self.predict.validate()?;
        self.decide.validate()?;
        self.kpi.check(&self.cluster)
    }
}

/// Every node of the engine, serving on one gRPC server.
pub struct Engine {
    /// Where the gRPC server listens.
    pub local: std::net::SocketAddr,
    /// The ingest node.
    pub ingest: IngestNode,
    /// The profile node.
    pub profile: ProfileNode,
    /// The prediction node.
    pub predict: PredictNode,
    /// The decision node.
    pub decide: DecideNode,
    /// The KPI node.
    pub kpi: KpiNode,
    server: Option<GrpcServer>,
}

impl Engine {
    /// Builds and starts every node (the gRPC server is bound, not yet serving: see
    /// [`Engine::serve`]).
    pub async fn start(
        mut config: StandaloneConfig,
        registry: &MetricsRegistry,
        shutdown: &Shutdown,
    ) -> anyhow::Result<Self> {
        // The KPI node runs here, so the logs must wait for it before they are trimmed.
        if !config
            .profile
            .log_consumers
            .iter()
            .any(|c| c == KPI_CONSUMER)
        {
            config.profile.log_consumers.push(KPI_CONSUMER.to_owned());
        }
        let stores = Stores::open(&config.store, config.cluster.shard_count)?;
        let ingest = IngestNode::build(
            config.ingest.clone(),
            &config.cluster,
            IngestDeps {
                stores: stores.clone(),
                metrics: registry.clone(),
                shutdown: shutdown.clone(),
            },
        );
        if let Err(err) = ingest.readiness().await {
            eprintln!("warning: event log not reachable yet ({err}); requests fail until it is");
        }
        let mut server = GrpcServer::bind(&config.server).await?;
        server.register_metrics(registry);
        let local = server.local_addr();
        if config.profile.node_id.is_empty() {
            config.profile.node_id = default_node_id(local.port());
        }
        let profile = ProfileNode::build(
            config.profile.clone(),
            &config.cluster,
            ProfileDeps {
                stores: stores.clone(),
                metrics: registry.clone(),
                shutdown: shutdown.clone(),
            },
        );
        let predict = PredictNode::build(
            config.predict.clone(),
            &config.cluster,
            PredictDeps {
                stores: stores.clone(),
                profiles: profile.client(),
                metrics: registry.clone(),
            },
        );
        let decide = DecideNode::build(
            config.decide.clone(),
            &config.cluster,
            DecideDeps {
                stores: stores.clone(),
                profiles: profile.client(),
                predict: predict.client(),
                ingest: ingest.client(),
                metrics: registry.clone(),
                shutdown: shutdown.clone(),
            },
        );
        let kpi = KpiNode::build(config.kpi.clone(), &config.cluster, stores, registry);
        ingest.register(&mut server);
        profile.register(&mut server);
        predict.register(&mut server);
        decide.register(&mut server);
        kpi.register(&mut server);
        profile.start(if config.profile.advertise_address.is_empty() {
            local.to_string()
        } else {
            config.profile.advertise_address.clone()
        });
        predict.start(if config.predict.consumer_name.is_empty() {
            iee_runtime::instance_name("standalone", local.port())
        } else {
            config.predict.consumer_name.clone()
        });
        decide.start().await;
        kpi.start();
        Ok(Self {
            local,
            ingest,
            profile,
            predict,
            decide,
            kpi,
            server: Some(server),
        })
    }

    /// Serves gRPC until `shutdown` is triggered.
    pub async fn serve(&mut self, shutdown: Shutdown) -> anyhow::Result<()> {
        if let Some(server) = self.server.take() {
            server.serve(shutdown).await.context("grpc server")?;
        }
        Ok(())
    }

    /// Stops every node, the consumers of a node's output first.
    pub async fn stop(&self) {
        self.kpi.stop().await;
        self.decide.stop().await;
        self.predict.stop().await;
        self.profile.stop().await;
        self.ingest.stop().await;
    }
}

pub async fn run(flags: ServeFlags) -> anyhow::Result<ExitCode> {
    let config: StandaloneConfig =
        iee_config::load(&Layers::standard(flags.config.clone()), &flags.overrides())?;
    if flags.print_config {
        print!("{}", iee_config::to_toml(&config)?);
        return Ok(ExitCode::SUCCESS);
    }
    let _tracing = iee_telemetry::init_telemetry(&config.telemetry, "iee")?;

    let registry = MetricsRegistry::default();
    let shutdown = Shutdown::new();
    let metrics_listen = config.telemetry.metrics_listen.clone();
    let mut engine = Engine::start(config, &registry, &shutdown).await?;
    if !metrics_listen.is_empty() {
        let stop = shutdown.clone();
        let addr =
            iee_telemetry::serve_metrics(
                &metrics_listen,
                registry,
                async move { stop.wait().await },
            )
            .await?;
        eprintln!("metrics on http://{addr}/metrics");
    }
    // The exact line tools wait for; keep its shape.
    println!("listening on {}", engine.local);

    let trigger = shutdown.clone();
    tokio::spawn(async move {
        let signal = wait_for_signal().await;
        eprintln!("{signal} received: draining");
        trigger.trigger();
    });
    engine.serve(shutdown).await?;
    engine.stop().await;
    Ok(ExitCode::SUCCESS)
}

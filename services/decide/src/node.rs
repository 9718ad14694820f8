//! `DecideNode`: the decision service as a unit that runs in its own binary, in standalone and
//! in tests alike.

use std::{path::PathBuf, sync::Arc, time::Duration};

use iee_api::{
    decide::{DecideApi, DecideClient},
    ingest::TouchpointClient,
    predict::PredictClient,
    profile::ProfileClient,
};
use iee_config::ClusterConfig;
use iee_runtime::{Background, GrpcServer};
use iee_store::Stores;
use iee_telemetry::MetricsRegistry;

use crate::{
    DecideConfig, configs::ConfigSet, metrics::DecideMetrics, proactive, service::Decider,
};

/// What a decide node is built from.
#[derive(Debug, Clone)]
pub struct DecideDeps {
    /// The storage backend (configurations, decision log, outbound streams, shard map).
    pub stores: Stores,
    /// Profiles, contact reservations and signals: in process or routed over gRPC.
    pub profiles: ProfileClient,
    /// Propensities and customer scores.
    pub predict: PredictClient,
    /// Where outcomes are ingested.
    pub ingest: TouchpointClient,
    /// Where the node registers its metrics.
    pub metrics: MetricsRegistry,
    /// The process's shutdown: open `WatchOutbound` streams end when it begins, so a draining
    /// replica does not wait out its watchers (they reconnect elsewhere from their cursor).
    pub shutdown: iee_runtime::Shutdown,
}

/// The decision service of one replica.
pub struct DecideNode {
    decider: Arc<Decider>,
    background: Background,
}

impl std::fmt::Debug for DecideNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecideNode").finish_non_exhaustive()
    }
}

impl DecideNode {
    /// Builds the node. The configuration must have been validated.
    pub fn build(config: DecideConfig, cluster: &ClusterConfig, deps: DecideDeps) -> Self {
        let metrics = DecideMetrics::register(&deps.metrics);
        let path = (!config.config_path.is_empty()).then(|| PathBuf::from(&config.config_path));
        let configs = Arc::new(ConfigSet::new(
            deps.stores.configs.clone(),
            path,
            metrics.clone(),
            Duration::from_millis(config.config_poll_interval_ms),
        ));
        let decider = Arc::new(Decider {
            shutdown: deps.shutdown,
            admission: tokio::sync::Semaphore::new(config.max_in_flight),
            settings: config,
            configs,
            profiles: deps.profiles,
            predict: deps.predict,
            ingest: deps.ingest,
            stores: deps.stores,
            metrics,
            shard_count: cluster.shard_count,
        });
        Self {
            decider,
            background: Background::new(),
        }
    }

    /// Reads the mounted configurations, then starts the background work: polling for
    /// configuration changes and, if enabled, proactive decisions from signals.
    pub async fn start(&self) {
        self.decider.configs.refresh().await;
        let configs = self.decider.configs.clone();
        let every = Duration::from_millis(self.decider.settings.config_poll_interval_ms);
        self.background.every(every, move || {
            let configs = configs.clone();
            async move { configs.refresh().await }
        });
        if self.decider.settings.proactive {
            self.background.spawn(proactive::run(
                self.decider.clone(),
                self.background.stop_signal(),
            ));
        }
    }

    /// Adds `DecisionService` to `server`.
    pub fn register(&self, server: &mut GrpcServer) {
        let api: Arc<dyn DecideApi> = self.decider.clone();
        server.add_service(crate::grpc::service(api, self.decider.metrics.rpc.clone()));
    }

    /// An in-process client.
    pub fn client(&self) -> DecideClient {
        DecideClient::Local(self.decider.clone())
    }

    /// Stops the background work.
    pub async fn stop(&self) {
        self.background.stop().await;
        tracing::info!("decide node stopped");
    }
}

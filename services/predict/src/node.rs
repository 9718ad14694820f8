//! `PredictNode`: the prediction service as a unit that runs in its own binary, in standalone
//! and in tests alike.

use std::{sync::Arc, time::Duration};

use iee_api::{
    predict::{PredictApi, PredictClient},
    profile::ProfileClient,
};
use iee_config::ClusterConfig;
use iee_runtime::{Background, GrpcServer};
use iee_store::Stores;
use iee_telemetry::MetricsRegistry;

use crate::{
    PredictConfig, learner::Learner, metrics::PredictMetrics, outcomes, registry::ModelCache,
    service::Predictor,
};

/// What a prediction node is built from.
#[derive(Debug, Clone)]
pub struct PredictDeps {
    /// The storage backend (model registry, shared learning, the shard logs).
    pub stores: Stores,
    /// Where profiles are read from: in process (standalone) or the routed gRPC client.
    pub profiles: ProfileClient,
    /// Where the node registers its metrics.
    pub metrics: MetricsRegistry,
}

/// The prediction service of one replica.
pub struct PredictNode {
    predictor: Arc<Predictor>,
    stores: Stores,
    shard_count: u32,
    background: Background,
}

impl std::fmt::Debug for PredictNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PredictNode").finish_non_exhaustive()
    }
}

impl PredictNode {
    /// Builds the node. The configuration must have been validated.
    pub fn build(config: PredictConfig, cluster: &ClusterConfig, deps: PredictDeps) -> Self {
        let metrics = PredictMetrics::register(&deps.metrics);
        let predictor = Arc::new(Predictor {
            cache: ModelCache::new(deps.stores.models.clone(), metrics.clone()),
            registry: deps.stores.models.clone(),
            profiles: deps.profiles,
            learner: Arc::new(Learner::new()),
            metrics,
            config,
        });
        Self {
            predictor,
            stores: deps.stores,
            shard_count: cluster.shard_count,
            background: Background::new(),
        }
    }

    /// Starts the background work: picking up activations, and learning from outcomes.
    /// `consumer` names this replica in the learners' consumer group.
    pub fn start(&self, consumer: String) {
        let predictor = self.predictor.clone();
        let every = Duration::from_millis(predictor.config.refresh_interval_ms);
        self.background.every(every, move || {
            let predictor = predictor.clone();
            async move {
                match predictor.cache.refresh().await {
                    Ok(n) => {
                        predictor.metrics.refreshes.inc_by(n as u64);
                    }
                    Err(err) => tracing::warn!(error = %err, "model assignment refresh failed"),
                }
            }
        });
        if self.predictor.config.learn_online {
            self.background.spawn(outcomes::learn(
                self.predictor.clone(),
                self.stores.clone(),
                self.shard_count,
                consumer,
                self.background.stop_signal(),
            ));
        }
    }

    /// Adds `PredictionService` to `server`.
    pub fn register(&self, server: &mut GrpcServer) {
        let api: Arc<dyn PredictApi> = self.predictor.clone();
        server.add_service(crate::grpc::service(
            api,
            self.predictor.metrics.rpc.clone(),
        ));
    }

    /// An in-process client.
    pub fn client(&self) -> PredictClient {
        PredictClient::Local(self.predictor.clone())
    }

    /// Stops the background work, publishing what was learned since the last merge.
    pub async fn stop(&self) {
        self.background.stop().await;
        tracing::info!("prediction node stopped");
    }
}

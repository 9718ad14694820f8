//! The engine the demo drives: every node in this process on the in-memory store, tuned to
//! react within a fraction of a second, with the demo's decision configuration put and a
//! propensity model that reads the page of the visit registered and activated.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use iee_api::{
    decide::{DecideApi, DecideClient, PutConfigRequest},
    ingest::TouchpointClient,
    kpi::KpiClient,
    pb::common::CustomerRef,
    predict::{
        ActivateModelRequest, FeatureVector, ModelRef, PredictApi, PredictClient, PropensityQuery,
        RegisterModelRequest, ScoreRequest,
    },
};
use iee_predict::model::{
    ARTIFACT_FORMAT, Kind, ModelArtifact, ModelBody,
    encoder::{CategoricalInput, Encoder},
    propensity::{Forgetting, PropensityModel},
};
use iee_runtime::Shutdown;
use iee_telemetry::{MetricsRegistry, TracingGuard};
use tokio::task::JoinHandle;

use super::catalogue::{ACTIONS, CONFIG_YAML, PAGES, TENANT};
use crate::standalone::{Engine, StandaloneConfig};

/// The propensity model the demo registers.
pub const MODEL_ID: &str = "demo-propensity";

/// Its version.
const MODEL_VERSION: &str = "1";

/// The feature it reads: the touchpoint (page) of the decision.
pub const MODEL_FEATURE: &str = "ctx.touchpoint";

/// The running engine and in-process clients of its services.
pub struct DemoEngine {
    /// Where its gRPC server listens (so other tools can look while the demo runs).
    pub local: SocketAddr,
    /// Touchpoints report events here.
    pub ingest: TouchpointClient,
    /// Decisions and outcomes.
    pub decide: DecideClient,
    /// Measurement.
    pub kpi: KpiClient,
    shutdown: Shutdown,
    serving: JoinHandle<anyhow::Result<()>>,
    _tracing: TracingGuard,
}

/// The configuration of the demo's engine: in-memory, few shards and partitions, short
/// polling and sync intervals so outcomes reach learning and measurement quickly, a KPI
/// attribution window of one second, generous timeouts for debug builds, and quiet logs
/// (`RUST_LOG` overrides).
fn config() -> StandaloneConfig {
    let mut config = StandaloneConfig::default();
    config.server.listen = "127.0.0.1:0".to_owned();
    config.telemetry.log_filter = "warn".to_owned();
    config.telemetry.metrics_listen = String::new();
    config.cluster.shard_count = 16;
    config.kpi.partitions = 4;
    config.kpi.poll_block_ms = 50;
    // A visit's purchase follows its decision within milliseconds; the default week would
    // credit every later purchase of the customer to each of their decisions.
    config.kpi.fold.attribution_window_secs = 1;
    config.predict.learn_sync_interval_ms = 200;
    config.predict.refresh_interval_ms = 200;
    config.decide.profile_timeout_ms = 1_000;
    config.decide.predict_timeout_ms = 1_000;
    config.decide.reserve_timeout_ms = 1_000;
    config.decide.max_in_flight = 64;
    config.decide.proactive = false;
    config
}

impl DemoEngine {
    /// Starts every node, waits until the profile service owns its shards, puts the demo's
    /// decision configuration and activates the demo's propensity model.
    pub async fn start() -> anyhow::Result<Self> {
        let config = config();
        let tracing = iee_telemetry::init_telemetry(&config.telemetry, "iee")?;
        let registry = MetricsRegistry::default();
        let shutdown = Shutdown::new();
        let mut engine = Engine::start(config, &registry, &shutdown).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !engine.profile.is_ready() {
            if Instant::now() > deadline {
                bail!("the profile service did not take its shards within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let local = engine.local;
        let ingest = engine.ingest.client();
        let decide = engine.decide.client();
        let predict = engine.predict.client();
        let kpi = engine.kpi.client();
        let stop = shutdown.clone();
        let serving = tokio::spawn(async move {
            let served = engine.serve(stop).await;
            engine.stop().await;
            served
        });
        let demo = Self {
            local,
            ingest,
            decide,
            kpi,
            shutdown,
            serving,
            _tracing: tracing,
        };
        demo.put_config().await?;
        activate_model(&predict).await?;
        Ok(demo)
    }

    /// Puts `examples/demo/demo.yaml` for the demo tenant.
    async fn put_config(&self) -> anyhow::Result<()> {
        let response = self
            .decide
            .put_config(PutConfigRequest {
                tenant_id: TENANT.to_owned(),
                yaml: CONFIG_YAML.to_owned(),
                expected_version: String::new(),
                validate_only: false,
            })
            .await
            .context("putting the demo's decision configuration")?;
        if !response.errors.is_empty() {
            let issues: Vec<String> = response
                .errors
                .iter()
                .map(|e| format!("{} (line {}): {}", e.path, e.line, e.message))
                .collect();
            bail!("examples/demo/demo.yaml is invalid: {}", issues.join("; "));
        }
        Ok(())
    }

    /// Stops serving and every node.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        self.serving.await.context("the engine's server task")?
    }
}

/// The demo's propensity model: a Bayesian logistic regression per action over the page of
/// the visit (one-hot), from a 10 % prior response rate. The built-in model has no features,
/// so it could only learn one best offer for everybody.
fn artifact() -> ModelArtifact {
    let encoder = Encoder {
        numeric: Vec::new(),
        categorical: vec![CategoricalInput {
            name: MODEL_FEATURE.to_owned(),
            categories: PAGES.iter().map(|&p| p.to_owned()).collect(),
        }],
    };
    let model = PropensityModel::new(encoder, 0.1, 1.0, Forgetting::default());
    ModelArtifact {
        format: ARTIFACT_FORMAT,
        model_id: MODEL_ID.to_owned(),
        version: MODEL_VERSION.to_owned(),
        kind: Kind::Propensity,
        description: "iee demo: online propensity per offer over the page of the visit".to_owned(),
        created_at_ms: 0,
        feature_names: model.feature_names(),
        training_examples: 0,
        metrics: BTreeMap::new(),
        training_data: BTreeMap::new(),
        body: ModelBody::Propensity(model),
    }
}

/// Registers and activates the demo's propensity model, then waits until scores come from it.
async fn activate_model(predict: &PredictClient) -> anyhow::Result<()> {
    predict
        .register_model(RegisterModelRequest {
            tenant_id: TENANT.to_owned(),
            artifact: artifact().to_json(),
        })
        .await
        .context("registering the demo's propensity model")?;
    predict
        .activate_model(ActivateModelRequest {
            tenant_id: TENANT.to_owned(),
            champion: Some(ModelRef {
                model_id: MODEL_ID.to_owned(),
                version: MODEL_VERSION.to_owned(),
            }),
            ..ActivateModelRequest::default()
        })
        .await
        .context("activating the demo's propensity model")?;
    let probe = ScoreRequest {
        customer: Some(CustomerRef {
            tenant_id: TENANT.to_owned(),
            ..CustomerRef::default()
        }),
        features: Some(FeatureVector::default()),
        propensity: Some(PropensityQuery {
            action_ids: vec![ACTIONS[0].id.to_owned()],
            touchpoint: PAGES[0].to_owned(),
            ..PropensityQuery::default()
        }),
        ..ScoreRequest::default()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = predict
            .score(probe.clone())
            .await
            .context("scoring with the demo's propensity model")?;
        let serving = response
            .propensities
            .first()
            .and_then(|p| p.model.as_ref())
            .is_some_and(|m| m.model_id == MODEL_ID);
        if serving {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the prediction service did not pick up {MODEL_ID} within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_model_reads_only_catalogue_features() {
        let json = artifact().to_json();
        let parsed = ModelArtifact::from_json(&json, iee_predict::features::is_known).unwrap();
        assert_eq!(parsed.feature_names, vec![MODEL_FEATURE.to_owned()]);
    }
}

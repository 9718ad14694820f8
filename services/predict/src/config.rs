//! Configuration of the prediction service: `[predict]` and the `iee-predict` binary's sections.

use iee_config::{ClusterConfig, ConfigError, Validate};
use iee_runtime::{ClientConfig, ServerConfig};
use iee_store::StoreConfig;
use iee_telemetry::TelemetryConfig;
use serde::{Deserialize, Serialize};

/// The `[predict]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PredictConfig {
    /// Profile nodes to read profiles from (`host:port`, gRPC). Empty inside `iee standalone`,
    /// which reads profiles in process.
    pub profile_seeds: Vec<String>,
    /// How often cached model assignments are checked for changes (an activation reaches every
    /// replica within about this long).
    pub refresh_interval_ms: u64,
    /// Longest wait for a profile before `Score` fails with UNAVAILABLE.
    pub profile_timeout_ms: u64,
    /// Learn propensities online from `decision_outcome` events in the shard logs.
    pub learn_online: bool,
    /// How often a replica merges what it learned with the other replicas through the store.
    pub learn_sync_interval_ms: u64,
    /// Log entries read per shard per read by the learner.
    pub learn_read_batch: usize,
    /// This replica's name in the learners' consumer group (empty: host name and port).
    pub consumer_name: String,
}

impl Default for PredictConfig {
    fn default() -> Self {
        Self {
            profile_seeds: Vec::new(),
            refresh_interval_ms: 1_000,
            profile_timeout_ms: 2_000,
            learn_online: true,
            learn_sync_interval_ms: 1_000,
            learn_read_batch: 512,
            consumer_name: String::new(),
        }
    }
}

impl Validate for PredictConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("predict.refresh_interval_ms", self.refresh_interval_ms),
            ("predict.profile_timeout_ms", self.profile_timeout_ms),
            (
                "predict.learn_sync_interval_ms",
                self.learn_sync_interval_ms,
            ),
            ("predict.learn_read_batch", self.learn_read_batch as u64),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(field, "must be greater than 0"));
            }
        }
        for (i, seed) in self.profile_seeds.iter().enumerate() {
            if seed.parse::<std::net::SocketAddr>().is_err() && !seed.contains(':') {
                return Err(ConfigError::invalid(
                    format!("predict.profile_seeds[{i}]"),
                    format!("{seed:?} is not a host:port address"),
                ));
            }
        }
        Ok(())
    }
}

/// Everything the `iee-predict` binary reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PredictServerConfig {
    /// Listener and shutdown.
    pub server: ServerConfig,
    /// Outgoing calls to the other services.
    pub client: ClientConfig,
    /// Logs and metrics.
    pub telemetry: TelemetryConfig,
    /// Installation-wide settings.
    pub cluster: ClusterConfig,
    /// Storage backend (model registry, shared learning, outcome events).
    pub store: StoreConfig,
    /// The prediction service.
    pub predict: PredictConfig,
}

impl Validate for PredictServerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.cluster.validate()?;
        self.store.validate()?;
        self.predict.validate()
    }
}

//! Settings of the decision service: `[decide]` and the `iee-decide` binary's sections. (The
//! decision configuration itself, actions and policies, is YAML data; see [`crate::config`].)

use iee_config::{ClusterConfig, ConfigError, Validate};
use iee_runtime::{ClientConfig, ServerConfig};
use iee_store::StoreConfig;
use iee_telemetry::TelemetryConfig;
use serde::{Deserialize, Serialize};

/// The `[decide]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecideConfig {
    /// Profile nodes (`host:port`, gRPC): profiles and contact reservations are routed to each
    /// shard's owner from here, and signals are watched on every listed node, so list them all
    /// (in Kubernetes, the profile StatefulSet's pod addresses). Empty inside `iee standalone`.
    pub profile_seeds: Vec<String>,
    /// The prediction service (`http://host:port`). Empty inside `iee standalone`.
    pub predict_endpoint: String,
    /// The ingest service (`http://host:port`), which outcomes are reported through. Empty
    /// inside `iee standalone`.
    pub ingest_endpoint: String,
    /// A YAML decision configuration file, or a directory of them (`*.yaml`, `*.yml`; e.g. a
    /// mounted ConfigMap), one tenant per file. Empty: configurations come only from
    /// `PutConfig`. Tenants configured here cannot be changed with `PutConfig`.
    pub config_path: String,
    /// How often `config_path` is re-read and the active versions in the store are checked (a
    /// change reaches every replica within about this long).
    pub config_poll_interval_ms: u64,
    /// Longest wait for the profile before deciding without it (`degraded`).
    pub profile_timeout_ms: u64,
    /// Longest wait for the propensities before deciding with prior ones (`degraded`).
    pub predict_timeout_ms: u64,
    /// Longest wait for one contact reservation before the action is treated as refused.
    pub reserve_timeout_ms: u64,
    /// Most decisions in progress at once; more are refused at once with RESOURCE_EXHAUSTED and
    /// a retry delay, so an overload is answered instead of turning every decision into a
    /// degraded one. Queueing behind this many must stay under the profile and predict
    /// timeouts: about 30 ms at this replica's capacity (raise it with the cores it has).
    pub max_in_flight: usize,
    /// Most dropped actions a `Decide` response lists (latest stage first); the decision log
    /// and `ExplainDecision` still account for every action.
    pub max_filtered: usize,
    /// Run proactive decisions from the profile service's signals.
    pub proactive: bool,
    /// Name under which the signal watcher saves its resume cursors; replicas sharing it share
    /// the cursors (and publish each signal's decision once).
    pub watcher_name: String,
    /// About how many entries each tenant's outbound stream keeps.
    pub outbound_max_len: usize,
    /// Signals older than this (emitted while the service was down longer) are skipped, not
    /// acted on.
    pub signal_max_age_secs: u64,
    /// How long a published signal is remembered, so a redelivered signal publishes nothing
    /// (at least the profile's signal history retention).
    pub outbound_dedup_hours: u64,
}

impl Default for DecideConfig {
    fn default() -> Self {
        Self {
            profile_seeds: Vec::new(),
            predict_endpoint: String::new(),
            ingest_endpoint: String::new(),
            config_path: String::new(),
            config_poll_interval_ms: 1_000,
            profile_timeout_ms: 50,
            predict_timeout_ms: 50,
            reserve_timeout_ms: 100,
            max_in_flight: 32,
            max_filtered: 25,
            proactive: true,
            watcher_name: "decide".to_owned(),
            signal_max_age_secs: 6 * 3600,
            outbound_max_len: 100_000,
            outbound_dedup_hours: 72,
        }
    }
}

impl Validate for DecideConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            (
                "decide.config_poll_interval_ms",
                self.config_poll_interval_ms,
            ),
            ("decide.profile_timeout_ms", self.profile_timeout_ms),
            ("decide.predict_timeout_ms", self.predict_timeout_ms),
            ("decide.reserve_timeout_ms", self.reserve_timeout_ms),
            ("decide.outbound_max_len", self.outbound_max_len as u64),
            ("decide.max_in_flight", self.max_in_flight as u64),
            ("decide.signal_max_age_secs", self.signal_max_age_secs),
            ("decide.outbound_dedup_hours", self.outbound_dedup_hours),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(field, "must be greater than 0"));
            }
        }
        if self.watcher_name.is_empty() {
            return Err(ConfigError::invalid(
                "decide.watcher_name",
                "must not be empty",
            ));
        }
        for (i, seed) in self.profile_seeds.iter().enumerate() {
            if !seed.contains(':') {
                return Err(ConfigError::invalid(
                    format!("decide.profile_seeds[{i}]"),
                    format!("{seed:?} is not a host:port address"),
                ));
            }
        }
        for (field, value) in [
            ("decide.predict_endpoint", &self.predict_endpoint),
            ("decide.ingest_endpoint", &self.ingest_endpoint),
        ] {
            if !value.is_empty() && !value.starts_with("http://") && !value.starts_with("https://")
            {
                return Err(ConfigError::invalid(
                    field,
                    format!("{value:?} is not an http:// or https:// address"),
                ));
            }
        }
        Ok(())
    }
}

/// Everything the `iee-decide` binary reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DecideServerConfig {
    /// Listener and shutdown.
    pub server: ServerConfig,
    /// Outgoing calls to the other services.
    pub client: ClientConfig,
    /// Logs and metrics.
    pub telemetry: TelemetryConfig,
    /// Installation-wide settings.
    pub cluster: ClusterConfig,
    /// Storage backend (configurations, decision log, outbound streams).
    pub store: StoreConfig,
    /// The decision service.
    pub decide: DecideConfig,
}

impl Validate for DecideServerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.cluster.validate()?;
        self.store.validate()?;
        self.decide.validate()
    }
}

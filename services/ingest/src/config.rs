//! Settings of the ingest service and of the `iee-ingest` binary.

use serde::{Deserialize, Serialize};

use iee_config::{ClusterConfig, ConfigError, Validate};
use iee_runtime::{ClientConfig, ServerConfig};
use iee_store::StoreConfig;
use iee_telemetry::TelemetryConfig;

/// Limits and windows of the ingest service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Most events in one batch (unary request or stream batch).
    pub max_batch_events: usize,
    /// Largest gRPC message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Largest single event (encoded), in bytes.
    pub max_event_bytes: usize,
    /// Most properties on one event.
    pub max_properties: usize,
    /// Longest property key, in bytes.
    pub max_property_key_bytes: usize,
    /// Longest string property value, in bytes.
    pub max_property_value_bytes: usize,
    /// Longest `text`, in bytes.
    pub max_text_bytes: usize,
    /// How far in the future `occurred_at` may lie (client clock skew), in seconds.
    pub max_future_skew_secs: u64,
    /// How long a seen `event_id` is remembered for deduplication, in seconds.
    pub dedup_window_secs: u64,
    /// Events being processed at once, across all requests; beyond it unary requests wait up
    /// to `overload_wait_ms` and then fail with RESOURCE_EXHAUSTED, and streams stop reading.
    pub max_in_flight_events: usize,
    /// How long a unary request waits for capacity before RESOURCE_EXHAUSTED.
    pub overload_wait_ms: u64,
    /// Batches a stream reads ahead of the one being appended (its backpressure bound).
    pub stream_read_ahead: usize,
    /// Dead letters kept per tenant (approximately; older ones are trimmed).
    pub dead_letter_retention: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_batch_events: 5_000,
            max_message_bytes: 16 << 20,
            max_event_bytes: 32 << 10,
            max_properties: 64,
            max_property_key_bytes: 64,
            max_property_value_bytes: 1_024,
            max_text_bytes: 4_096,
            max_future_skew_secs: 300,
            dedup_window_secs: 24 * 3600,
            max_in_flight_events: 50_000,
            overload_wait_ms: 100,
            stream_read_ahead: 4,
            dead_letter_retention: 100_000,
        }
    }
}

impl Validate for IngestConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("ingest.max_batch_events", self.max_batch_events as u64),
            ("ingest.max_message_bytes", self.max_message_bytes as u64),
            ("ingest.max_event_bytes", self.max_event_bytes as u64),
            ("ingest.dedup_window_secs", self.dedup_window_secs),
            ("ingest.stream_read_ahead", self.stream_read_ahead as u64),
            ("ingest.dead_letter_retention", self.dead_letter_retention),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(ConfigError::invalid(field, "must be positive"));
            }
        }
        if self.max_in_flight_events < self.max_batch_events {
            return Err(ConfigError::invalid(
                "ingest.max_in_flight_events",
                format!(
                    "must be at least ingest.max_batch_events ({}), got {}",
                    self.max_batch_events, self.max_in_flight_events
                ),
            ));
        }
        Ok(())
    }
}

/// Everything the `iee-ingest` binary reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct IngestServerConfig {
    /// Listener and shutdown.
    pub server: ServerConfig,
    /// Outgoing calls to the other services.
    pub client: ClientConfig,
    /// Logs and metrics.
    pub telemetry: TelemetryConfig,
    /// Installation-wide settings.
    pub cluster: ClusterConfig,
    /// Storage backend.
    pub store: StoreConfig,
    /// The ingest service.
    pub ingest: IngestConfig,
}

impl Validate for IngestServerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.cluster.validate()?;
        self.store.validate()?;
        self.ingest.validate()
    }
}

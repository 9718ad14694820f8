//! Settings of the KPI service: `[kpi]` (with the fold's `[kpi.fold]`) and the `iee-kpi`
//! binary's sections.

use iee_config::{ClusterConfig, ConfigError, Validate};
use iee_runtime::{ClientConfig, ServerConfig};
use iee_store::StoreConfig;
use iee_telemetry::TelemetryConfig;
use serde::{Deserialize, Serialize};

use crate::fold::FoldConfig;

/// The consumer name the KPI service acknowledges log offsets under; list it in
/// `profile.log_consumers` so the logs are not trimmed before they are measured.
pub const KPI_CONSUMER: &str = "kpi";

/// The `[kpi]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KpiConfig {
    /// Measurement partitions: shard `s` is aggregated in partition `s % partitions`, and a
    /// query reads one hash per partition and bucket. Fixed at install, like the shard count
    /// (changing it starts the aggregates afresh); at most the shard count.
    pub partitions: u32,
    /// Number of KPI replicas that split the partitions.
    pub replicas: u32,
    /// This replica's number, `0..replicas`; replica `r` aggregates the partitions `p` with
    /// `p % replicas == r`. In a Kubernetes StatefulSet, the pod's ordinal.
    pub ordinal: u32,
    /// Most log entries read per shard and round.
    pub batch_size: usize,
    /// How long a read waits for new entries when the logs are idle.
    pub poll_block_ms: u64,
    /// How often the current KPI values are refreshed on the Prometheus endpoint (replica 0
    /// only); 0 disables them.
    pub gauge_interval_secs: u64,
    /// Most tenants whose KPI values are exported to Prometheus (the label's bound).
    pub gauge_max_tenants: usize,
    /// Most store buckets one query may read (beyond, it must align its range to coarser
    /// buckets).
    pub max_query_buckets: usize,
    /// How measurement folds events (attribution, sessions, caps, retention).
    pub fold: FoldConfig,
}

impl Default for KpiConfig {
    fn default() -> Self {
        Self {
            partitions: 16,
            replicas: 1,
            ordinal: 0,
            batch_size: 500,
            poll_block_ms: 1_000,
            gauge_interval_secs: 30,
            gauge_max_tenants: 20,
            max_query_buckets: 20_000,
            fold: FoldConfig::default(),
        }
    }
}

impl KpiConfig {
    /// The partitions this replica aggregates.
    pub fn my_partitions(&self) -> Vec<u32> {
        (0..self.partitions)
            .filter(|p| p % self.replicas.max(1) == self.ordinal)
            .collect()
    }

    /// Checks the section against the installation's shard count.
    pub fn check(&self, cluster: &ClusterConfig) -> Result<(), ConfigError> {
        self.validate()?;
        if self.partitions > cluster.shard_count {
            return Err(ConfigError::invalid(
                "kpi.partitions",
                format!(
                    "must not exceed cluster.shard_count ({}), got {}",
                    cluster.shard_count, self.partitions
                ),
            ));
        }
        Ok(())
    }
}

impl Validate for KpiConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("kpi.partitions", u64::from(self.partitions)),
            ("kpi.replicas", u64::from(self.replicas)),
            ("kpi.batch_size", self.batch_size as u64),
            ("kpi.poll_block_ms", self.poll_block_ms),
            ("kpi.gauge_max_tenants", self.gauge_max_tenants as u64),
            ("kpi.max_query_buckets", self.max_query_buckets as u64),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(field, "must be greater than 0"));
            }
        }
        if self.ordinal >= self.replicas {
            return Err(ConfigError::invalid(
                "kpi.ordinal",
                format!(
                    "must be below kpi.replicas ({}), got {}",
                    self.replicas, self.ordinal
                ),
            ));
        }
        if self.replicas > self.partitions {
            return Err(ConfigError::invalid(
                "kpi.replicas",
                format!(
                    "more replicas than partitions ({}) leaves some idle",
                    self.partitions
                ),
            ));
        }
        self.fold.validate().map_err(|reason| {
            let (field, why) = reason.split_once(": ").unwrap_or(("kpi.fold", &reason));
            ConfigError::invalid(field, why)
        })
    }
}

/// Everything the `iee-kpi` binary reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct KpiServerConfig {
    /// Listener and shutdown.
    pub server: ServerConfig,
    /// Outgoing calls to the other services.
    pub client: ClientConfig,
    /// Logs and metrics.
    pub telemetry: TelemetryConfig,
    /// Installation-wide settings.
    pub cluster: ClusterConfig,
    /// Storage backend (the shard logs, the aggregates).
    pub store: StoreConfig,
    /// The KPI service.
    pub kpi: KpiConfig,
}

impl Validate for KpiServerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.cluster.validate()?;
        self.store.validate()?;
        self.kpi.check(&self.cluster)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_split_the_partitions() {
        let mut config = KpiConfig {
            partitions: 8,
            replicas: 3,
            ..KpiConfig::default()
        };
        let mut all = Vec::new();
        for ordinal in 0..3 {
            config.ordinal = ordinal;
            all.extend(config.my_partitions());
        }
        all.sort_unstable();
        assert_eq!(all, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn bad_values_name_their_field() {
        let bad = KpiConfig {
            ordinal: 2,
            replicas: 2,
            ..KpiConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("kpi.ordinal")
        );
        let too_many = KpiConfig {
            partitions: 64,
            ..KpiConfig::default()
        };
        let err = too_many
            .check(&ClusterConfig { shard_count: 32 })
            .unwrap_err()
            .to_string();
        assert!(err.contains("kpi.partitions"), "{err}");
        assert!(KpiServerConfig::default().validate().is_ok());
    }
}

//! Configuration of the profile service: `[profile]` and the `iee-profile` binary's sections.

use iee_config::{ClusterConfig, ConfigError, Validate};
use iee_runtime::{ClientConfig, ServerConfig};
use iee_store::StoreConfig;
use iee_telemetry::TelemetryConfig;
use serde::{Deserialize, Serialize};

use crate::fold::FoldConfig;

/// The `[profile]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProfileConfig {
    /// This node's stable id among profile nodes (the pod name on Kubernetes). Empty: the host
    /// name and the listening port.
    pub node_id: String,
    /// The `host:port` other services reach this node at (named in redirects). Empty: the
    /// address the server listens on.
    pub advertise_address: String,
    /// How long a shard lease lives without renewal. After a crash, the node's shards move once
    /// their leases expire, so this bounds failover time.
    pub lease_ttl_ms: u64,
    /// How often leases are renewed (well below `lease_ttl_ms`).
    pub renew_interval_ms: u64,
    /// A node stops serving a shard this long before its lease could expire on the Redis side if
    /// renewals fail, to absorb clock-rate differences and request latency.
    pub lease_safety_margin_ms: u64,
    /// How long a node counts as a member after its last heartbeat.
    pub member_ttl_ms: u64,
    /// How often membership is read and shards are acquired or handed off.
    pub rebalance_interval_ms: u64,
    /// Longest delay between applying an event and writing the profile (write-behind).
    pub flush_interval_ms: u64,
    /// A shard flushes early once this many profiles are dirty.
    pub flush_max_profiles: usize,
    /// Log entries read per shard per read.
    pub read_batch: usize,
    /// How long one log read waits for new entries.
    pub read_block_ms: u64,
    /// A customer actor with no message for this long is passivated (its state stays in the
    /// store and is loaded again on the next message).
    pub passivate_after_secs: u64,
    /// A customer actor with no message for this long keeps its profile encoded (a few hundred
    /// bytes instead of kilobytes) until its next message.
    pub compact_after_secs: u64,
    /// Most customer actors resident on this node; least recently used ones are passivated
    /// beyond it.
    pub max_resident_actors: usize,
    /// How often each shard checks its durable timers.
    pub timer_poll_ms: u64,
    /// How long a shard's signal history is kept (for `WatchSignals` resumption).
    pub signal_retention_secs: u64,
    /// How often each shard trims its log behind its consumers.
    pub trim_interval_secs: u64,
    /// Consumers that must have acknowledged a log entry before it is trimmed. `profile` is
    /// this service; add `kpi` once the KPI service consumes the logs. Empty: never trim.
    pub log_consumers: Vec<String>,
    /// After `EraseCustomer`, refuse (skip) later events of the erased id instead of starting a
    /// new profile from them.
    pub refuse_events_after_erasure: bool,
    /// How long `GetProfile` with `min_applied_offset` waits at most.
    pub max_read_wait_ms: u64,
    /// Dedup window of the records this service appends itself (merges, forwarded events,
    /// erasures), so a replay does not append them twice. Keep it equal to ingest's.
    pub dedup_window_secs: u64,
    /// How events fold into profiles.
    pub fold: FoldConfig,
    /// Where nodes find each other: `redis` (heartbeats into the store; in memory when the
    /// store is) or `kubernetes` (the EndpointSlices of the headless Service; needs the `kube`
    /// build feature). Shard leases and fencing stay in the store either way. Read by the
    /// `iee-profile` binary; `iee standalone` (one node) keeps the store's.
    pub membership: MembershipSource,
    /// The Kubernetes membership (`membership = "kubernetes"`).
    pub kubernetes: KubernetesMembershipConfig,
}

/// Where profile nodes find each other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MembershipSource {
    /// Heartbeats into the store (`iee:{members}:live` on Redis).
    #[default]
    Redis,
    /// The EndpointSlices of the profile headless Service, watched through the Kubernetes API.
    Kubernetes,
}

/// The `[profile.kubernetes]` section: which Service's endpoints are the members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesMembershipConfig {
    /// Namespace of the Service. Empty: the pod's own (the service account's namespace file),
    /// else `default`.
    pub namespace: String,
    /// The headless Service whose endpoints are the profile nodes (its EndpointSlices carry the
    /// label `kubernetes.io/service-name=<service>`). It must publish not-ready addresses: a
    /// node becomes ready only once it owns its shards, so it must be a member before.
    pub service: String,
    /// The Service port whose number makes a member's address `<pod ip>:<port>`.
    pub port_name: String,
    /// The API server's URL. Empty: in-cluster (service account token and CA).
    pub api_url: String,
    /// Once the watch has been failing this long, reading members fails: the node stops
    /// rebalancing and reports not ready, keeping its shards while their leases last.
    pub stale_after_ms: u64,
}

impl Default for KubernetesMembershipConfig {
    fn default() -> Self {
        Self {
            namespace: String::new(),
            service: "iee-profile-headless".to_owned(),
            port_name: "grpc".to_owned(),
            api_url: String::new(),
            stale_after_ms: 30_000,
        }
    }
}

impl Default for ProfileConfig {
    fn default() -> Self {
        Self {
            node_id: String::new(),
            advertise_address: String::new(),
            lease_ttl_ms: 3_000,
            renew_interval_ms: 500,
            lease_safety_margin_ms: 500,
            member_ttl_ms: 3_000,
            rebalance_interval_ms: 250,
            flush_interval_ms: 25,
            flush_max_profiles: 1_024,
            read_batch: 512,
            read_block_ms: 100,
            passivate_after_secs: 600,
            compact_after_secs: 10,
            max_resident_actors: 100_000,
            timer_poll_ms: 500,
            signal_retention_secs: 86_400,
            trim_interval_secs: 30,
            log_consumers: vec!["profile".to_owned()],
            refuse_events_after_erasure: true,
            max_read_wait_ms: 5_000,
            dedup_window_secs: 86_400,
            fold: FoldConfig::default(),
            membership: MembershipSource::Redis,
            kubernetes: KubernetesMembershipConfig::default(),
        }
    }
}

fn positive(field: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(field, "must be greater than 0"));
    }
    Ok(())
}

impl Validate for ProfileConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("profile.lease_ttl_ms", self.lease_ttl_ms),
            ("profile.renew_interval_ms", self.renew_interval_ms),
            ("profile.member_ttl_ms", self.member_ttl_ms),
            ("profile.rebalance_interval_ms", self.rebalance_interval_ms),
            ("profile.flush_interval_ms", self.flush_interval_ms),
            ("profile.read_block_ms", self.read_block_ms),
            ("profile.passivate_after_secs", self.passivate_after_secs),
            ("profile.compact_after_secs", self.compact_after_secs),
            ("profile.timer_poll_ms", self.timer_poll_ms),
            ("profile.signal_retention_secs", self.signal_retention_secs),
            ("profile.trim_interval_secs", self.trim_interval_secs),
            ("profile.max_read_wait_ms", self.max_read_wait_ms),
            ("profile.dedup_window_secs", self.dedup_window_secs),
        ] {
            positive(field, value)?;
        }
        if self.renew_interval_ms + self.lease_safety_margin_ms >= self.lease_ttl_ms {
            return Err(ConfigError::invalid(
                "profile.renew_interval_ms",
                format!(
                    "renew_interval_ms + lease_safety_margin_ms must stay below lease_ttl_ms \
                     ({} + {} >= {})",
                    self.renew_interval_ms, self.lease_safety_margin_ms, self.lease_ttl_ms
                ),
            ));
        }
        for (field, value) in [
            ("profile.flush_max_profiles", self.flush_max_profiles),
            ("profile.read_batch", self.read_batch),
            ("profile.max_resident_actors", self.max_resident_actors),
        ] {
            positive(field, value as u64)?;
        }
        for (i, consumer) in self.log_consumers.iter().enumerate() {
            if consumer.is_empty() || consumer.len() > 64 {
                return Err(ConfigError::invalid(
                    format!("profile.log_consumers[{i}]"),
                    "must be 1-64 characters",
                ));
            }
        }
        if self.membership == MembershipSource::Kubernetes {
            if !cfg!(feature = "kube") {
                return Err(ConfigError::invalid(
                    "profile.membership",
                    "\"kubernetes\" needs iee-profile built with `--features kube`; this \
                     build has no Kubernetes client (use \"redis\" or rebuild)",
                ));
            }
            self.kubernetes.validate()?;
        }
        self.fold.validate()
    }
}

impl Validate for KubernetesMembershipConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("profile.kubernetes.service", &self.service),
            ("profile.kubernetes.port_name", &self.port_name),
        ] {
            if value.is_empty() {
                return Err(ConfigError::invalid(field, "must not be empty"));
            }
        }
        positive("profile.kubernetes.stale_after_ms", self.stale_after_ms)
    }
}

/// Everything the `iee-profile` binary reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ProfileServerConfig {
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
    /// The profile service.
    pub profile: ProfileConfig,
}

impl Validate for ProfileServerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.cluster.validate()?;
        self.store.validate()?;
        self.profile.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubernetes() -> ProfileConfig {
        ProfileConfig {
            membership: MembershipSource::Kubernetes,
            ..ProfileConfig::default()
        }
    }

    #[cfg(not(feature = "kube"))]
    #[test]
    fn kubernetes_membership_without_the_feature_is_refused_naming_the_field() {
        let err = kubernetes().validate().unwrap_err().to_string();
        assert!(err.contains("profile.membership"), "{err}");
        assert!(err.contains("--features kube"), "{err}");
    }

    #[cfg(feature = "kube")]
    #[test]
    fn kubernetes_membership_needs_a_service_and_a_port_name() {
        assert!(kubernetes().validate().is_ok());
        let mut config = kubernetes();
        config.kubernetes.service.clear();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("profile.kubernetes.service"), "{err}");
        let mut config = kubernetes();
        config.kubernetes.stale_after_ms = 0;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("profile.kubernetes.stale_after_ms"), "{err}");
    }

    #[test]
    fn membership_is_redis_unless_configured() {
        assert_eq!(ProfileConfig::default().membership, MembershipSource::Redis);
        assert!(ProfileConfig::default().validate().is_ok());
    }
}

//! Backend selection and Redis connection settings.

use serde::{Deserialize, Serialize};

use iee_config::{ConfigError, Validate};

/// Which storage backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// In-process memory: nothing survives a restart. For standalone trials and tests.
    #[default]
    Memory,
    /// Redis: durable as far as the Redis deployment is.
    Redis,
}

/// Storage settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The backend.
    pub backend: Backend,
    /// Redis settings (used when `backend = "redis"`).
    pub redis: RedisConfig,
}

/// Redis connection settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` or `redis+unix:///path/to/socket`.
    pub url: String,
    /// Number of multiplexed connections requests are spread over.
    pub connections: usize,
    /// Time allowed to establish a connection.
    pub connect_timeout_ms: u64,
    /// Time allowed for a reply; past it the request fails as unavailable.
    pub response_timeout_ms: u64,
    /// Events per dedup-and-append script call. Smaller keeps Redis responsive to other
    /// clients; larger costs fewer calls. All calls of a batch go out in one pipeline.
    pub events_per_script: usize,
    /// Group script calls by shard, so every call touches one hash slot. Required on Redis
    /// Cluster; on a single instance, grouping a whole batch is faster.
    pub per_shard_scripts: bool,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".to_owned(),
            connections: 2,
            connect_timeout_ms: 1_000,
            response_timeout_ms: 2_000,
            events_per_script: 128,
            per_shard_scripts: false,
        }
    }
}

impl Validate for StoreConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let redis = &self.redis;
        if self.backend == Backend::Redis && redis.url.trim().is_empty() {
            return Err(ConfigError::invalid("store.redis.url", "must not be empty"));
        }
        if !(1..=64).contains(&redis.connections) {
            return Err(ConfigError::invalid(
                "store.redis.connections",
                format!("must be within 1..=64, got {}", redis.connections),
            ));
        }
        if !(1..=10_000).contains(&redis.events_per_script) {
            return Err(ConfigError::invalid(
                "store.redis.events_per_script",
                format!("must be within 1..=10000, got {}", redis.events_per_script),
            ));
        }
        if redis.connect_timeout_ms == 0 || redis.response_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "store.redis.response_timeout_ms",
                "timeouts must be positive",
            ));
        }
        Ok(())
    }
}

//! Installation-wide settings every service must agree on.

use serde::{Deserialize, Serialize};

use crate::{ConfigError, Validate};

/// Settings fixed for the whole installation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Number of shards customers are hashed into. Fixed at install: changing it re-routes every
    /// customer. Never derived from the number of pods.
    pub shard_count: u32,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self { shard_count: 1024 }
    }
}

impl Validate for ClusterConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.shard_count == 0 || self.shard_count > 65_536 {
            return Err(ConfigError::invalid(
                "cluster.shard_count",
                format!("must be within 1..=65536, got {}", self.shard_count),
            ));
        }
        Ok(())
    }
}

//! Storage behind traits: the per-shard event log with atomic deduplication, per-tenant dead
//! letters, identity links, and the profile service's membership, shard leases and fenced shard
//! state, the prediction service's model registry and shared propensity statistics, and the
//! decision service's configurations, decision log and outbound streams, and the KPI service's
//! offsets, measurement state and aggregates, each with a Redis (production) and an in-memory
//! (standalone, tests) implementation.
//! Every Redis key name is built in [`keys`].

mod config;
mod dead_letters;
mod decisions;
mod error;
mod event_log;
mod identity;
pub mod keys;
mod kpi;
mod memory;
mod models;
mod propensity;
mod redis;
mod shards;

use std::sync::Arc;

pub use config::{Backend, RedisConfig, StoreConfig};
pub use dead_letters::{DeadLetterEntry, DeadLetterPage, DeadLetters};
pub use decisions::{
    ActiveConfig, ConfigActivation, DecisionConfigs, DecisionLog, Outbound, OutboundEntry,
    Published, Recorded, StoredConfig,
};
pub use error::StoreError;
pub use event_log::{AppendOutcome, AppendRequest, EventLog, LogEntry};
pub use identity::{IdentityLinks, LinkOutcome};
pub use kpi::{
    CustomerWrite, Granularity, KpiCommit, KpiIncrement, KpiMark, KpiStore, MarkOp, OffsetMove,
};
pub use memory::MemoryStore;
pub use models::{Activation, Assignment, ModelRegistry, ModelVersionMeta};
pub use propensity::{ActionDelta, ActionStats, MergeToken, PropensityStats, decay_factor};
pub use redis::RedisStore;
pub use shards::{
    Acquire, Lease, LogConsumer, Member, Membership, PROFILE_CONSUMER, ProfileKey, ShardLeases,
    ShardOwner, ShardState, ShardWrite, Timer, WriteOutcome,
};

/// The stores a service is built with, whatever the backend.
#[derive(Clone)]
pub struct Stores {
    /// Per-shard event log.
    pub log: Arc<dyn EventLog>,
    /// Per-tenant dead letters.
    pub dead_letters: Arc<dyn DeadLetters>,
    /// Anonymous-to-customer links.
    pub identities: Arc<dyn IdentityLinks>,
    /// Profile node membership.
    pub membership: Arc<dyn Membership>,
    /// Shard leases and the shard map.
    pub leases: Arc<dyn ShardLeases>,
    /// Fenced per-shard profile state.
    pub shard_state: Arc<dyn ShardState>,
    /// Multi-shard log reads, acknowledgements and trimming.
    pub consumer: Arc<dyn LogConsumer>,
    /// Model versions and assignments.
    pub models: Arc<dyn ModelRegistry>,
    /// Shared statistics of the online propensity models.
    pub propensity: Arc<dyn PropensityStats>,
    /// Decision configuration versions and the active one per tenant.
    pub configs: Arc<dyn DecisionConfigs>,
    /// Decision records and the request-id index.
    pub decisions: Arc<dyn DecisionLog>,
    /// Outbound streams of proactive decisions and the signal watchers' cursors.
    pub outbound: Arc<dyn Outbound>,
    /// KPI aggregates, offsets and measurement state.
    pub kpi: Arc<dyn KpiStore>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stores")
    }
}

impl Stores {
    /// Opens the configured backend. Redis connects lazily: a Redis that is down at start makes
    /// requests fail with `Unavailable` until it is back, instead of failing the start.
    pub fn open(config: &StoreConfig, shard_count: u32) -> Result<Self, StoreError> {
        match config.backend {
            Backend::Memory => Ok(Self::from_one(Arc::new(MemoryStore::new(shard_count)))),
            Backend::Redis => Ok(Self::from_one(Arc::new(RedisStore::open(&config.redis)?))),
        }
    }

    /// Uses one object for every store.
    pub fn from_one<S>(store: Arc<S>) -> Self
    where
        S: EventLog
            + DeadLetters
            + IdentityLinks
            + Membership
            + ShardLeases
            + ShardState
            + LogConsumer
            + ModelRegistry
            + PropensityStats
            + DecisionConfigs
            + DecisionLog
            + Outbound
            + KpiStore,
    {
        Self {
            log: store.clone(),
            dead_letters: store.clone(),
            identities: store.clone(),
            membership: store.clone(),
            leases: store.clone(),
            shard_state: store.clone(),
            consumer: store.clone(),
            models: store.clone(),
            propensity: store.clone(),
            configs: store.clone(),
            decisions: store.clone(),
            outbound: store.clone(),
            kpi: store,
        }
    }
}

//! The decision service's storage: versioned decision configurations per tenant, the decision
//! log (with idempotency by request id), the outbound stream of proactive decisions (published
//! once per key) and the signal watcher's resume cursors.

use std::{collections::HashMap, time::Duration};

use crate::StoreError;

/// One stored configuration version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConfig {
    /// The configuration's YAML text.
    pub yaml: String,
    /// When the version was first stored, Unix milliseconds.
    pub created_at_ms: i64,
}

/// The active configuration version of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveConfig {
    /// The version.
    pub version: String,
    /// When it was activated, Unix milliseconds.
    pub activated_at_ms: i64,
}

/// The result of [`DecisionConfigs::activate_config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigActivation {
    /// The version is active now.
    Done {
        /// The version it replaced, if any.
        previous: Option<String>,
    },
    /// The active version was not the expected one; nothing changed.
    Conflict {
        /// The active version now, if any.
        current: Option<String>,
    },
}

/// Decision configuration versions per tenant. Versions are immutable and never deleted, so a
/// logged decision can always be explained and replayed against the version it used.
#[async_trait::async_trait]
pub trait DecisionConfigs: Send + Sync + 'static {
    /// Stores a version. `Ok(true)` when created; the same text again is a no-op (`Ok(false)`,
    /// the first `created_at_ms` is kept); a different text under an existing version fails with
    /// [`StoreError::Conflict`] and changes nothing.
    async fn put_config(
        &self,
        tenant_id: &str,
        version: &str,
        yaml: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError>;

    /// One stored version, if any.
    async fn get_config(
        &self,
        tenant_id: &str,
        version: &str,
    ) -> Result<Option<StoredConfig>, StoreError>;

    /// The active version of each given tenant (same order), `None` for a tenant without one.
    /// Replicas poll it to pick up activations made elsewhere.
    async fn active_configs(
        &self,
        tenant_ids: &[String],
    ) -> Result<Vec<Option<ActiveConfig>>, StoreError>;

    /// Makes `version` (which must have been stored) the tenant's active one, by
    /// compare-and-set: `expected` must equal the active version (`None`: the tenant has none).
    /// Activating the version that is already active is a no-op that answers `Done` (with that
    /// version as `previous`), whatever `expected` is, so a retried activation succeeds.
    /// A version that was never stored fails with [`StoreError::Conflict`].
    async fn activate_config(
        &self,
        tenant_id: &str,
        expected: Option<&str>,
        version: &str,
        now_ms: i64,
    ) -> Result<ConfigActivation, StoreError>;
}

/// The result of [`DecisionLog::record_decision`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The decision was recorded.
    New,
    /// Another decision was already recorded for the request id; nothing was written. Holds
    /// that decision's record.
    Duplicate(Vec<u8>),
}

/// The decision log: every decision's record (an encoded `DecisionRecord`) by tenant and id,
/// kept for a retention period, plus an index from request id to decision for idempotent
/// retries.
#[async_trait::async_trait]
pub trait DecisionLog: Send + Sync + 'static {
    /// Records a decision for `retention`. With a non-empty `request_id`, the index entry is
    /// written only if no decision holds that request id yet, atomically with the record; if
    /// one does, nothing is written and its record is returned as [`Recorded::Duplicate`].
    async fn record_decision(
        &self,
        tenant_id: &str,
        decision_id: &str,
        request_id: &str,
        record: &[u8],
        retention: Duration,
    ) -> Result<Recorded, StoreError>;

    /// The record of a decision, if still retained.
    async fn get_decision(
        &self,
        tenant_id: &str,
        decision_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// The record of the decision made for `request_id`, if still retained.
    async fn decision_for_request(
        &self,
        tenant_id: &str,
        request_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError>;
}

/// The result of [`Outbound::publish_outbound`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Appended now, at this cursor.
    New(String),
    /// Already published under the same key, at this cursor; nothing was appended.
    Already(String),
}

/// One entry of an outbound stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundEntry {
    /// Its position (a stream id); entries are ordered by it.
    pub cursor: String,
    /// The entry (an encoded `OutboundAction`, without its cursor).
    pub payload: Vec<u8>,
}

/// Per-tenant outbound streams of proactive decisions, published at most once per key, and the
/// signal watcher's resume cursors.
#[async_trait::async_trait]
pub trait Outbound: Send + Sync + 'static {
    /// Appends `payload` to the tenant's outbound stream unless an entry was published under
    /// `key` within `dedup_for`; the check and the append are one atomic step. The stream keeps
    /// about `max_len` entries (oldest trimmed).
    async fn publish_outbound(
        &self,
        tenant_id: &str,
        key: &str,
        payload: &[u8],
        dedup_for: Duration,
        max_len: usize,
    ) -> Result<Published, StoreError>;

    /// Up to `count` entries after `after` (empty: from the oldest retained), oldest first.
    /// Waits up to `block` for the first one when there is none yet (zero: does not wait).
    async fn read_outbound(
        &self,
        tenant_id: &str,
        after: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<OutboundEntry>, StoreError>;

    /// The saved signal cursors of `watcher` (shard → cursor).
    async fn signal_cursors(&self, watcher: &str) -> Result<HashMap<u32, String>, StoreError>;

    /// Saves the cursor of the last signal of `shard` that `watcher` has fully processed.
    async fn save_signal_cursor(
        &self,
        watcher: &str,
        shard: u32,
        cursor: &str,
    ) -> Result<(), StoreError>;
}

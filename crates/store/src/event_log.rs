//! The per-shard event log with idempotent appends.

use std::time::Duration;

use crate::StoreError;

/// One event to append.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    /// The event's shard.
    pub shard: u32,
    /// The tenant, part of the dedup key.
    pub tenant_id: String,
    /// The client's idempotency key.
    pub event_id: String,
    /// The encoded log record.
    pub payload: Vec<u8>,
}

/// What happened to one append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Appended at this offset.
    Appended(String),
    /// Already appended within the dedup window, at this offset; nothing was written.
    Duplicate(String),
}

/// One entry read back from a shard's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Its offset.
    pub offset: String,
    /// The encoded log record.
    pub payload: Vec<u8>,
}

/// The event log: one ordered log per shard.
#[async_trait::async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends each entry unless `(tenant_id, event_id)` was appended to its shard within
    /// `dedup_window`. For each entry the check and the append are one atomic step, so
    /// concurrent retries of one event yield exactly one entry. Entries of one shard are
    /// appended in the given order. Outcomes come back in request order.
    ///
    /// On `Err` some entries may have been appended; a retry of the same entries is safe.
    async fn append(
        &self,
        entries: &[AppendRequest],
        dedup_window: Duration,
    ) -> Result<Vec<AppendOutcome>, StoreError>;

    /// Reads up to `limit` entries of `shard` after offset `after` (from the start if `None`).
    async fn read(
        &self,
        shard: u32,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError>;

    /// Forgets the dedup markers of `event_ids` on `shard` (erasure: the markers of records
    /// that name an erased customer). A later append of one of them is no longer a duplicate.
    async fn forget(
        &self,
        shard: u32,
        tenant_id: &str,
        event_ids: &[String],
    ) -> Result<(), StoreError>;

    /// Number of entries in `shard`'s log.
    async fn len(&self, shard: u32) -> Result<u64, StoreError>;

    /// Checks the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

//! Per-tenant dead letters: rejected events kept with their reason, bounded per tenant.

use crate::StoreError;

/// One stored dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterEntry {
    /// Its id (ordered: later entries have greater ids).
    pub id: String,
    /// The encoded dead letter.
    pub payload: Vec<u8>,
}

/// A page of dead letters, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeadLetterPage {
    /// The entries.
    pub entries: Vec<DeadLetterEntry>,
    /// Pass as `before` to get the next (older) page; `None` at the end.
    pub next: Option<String>,
}

/// Dead-letter storage.
#[async_trait::async_trait]
pub trait DeadLetters: Send + Sync + 'static {
    /// Stores `(tenant_id, payload)` entries, keeping about `retention` newest per tenant.
    async fn put(&self, entries: &[(String, Vec<u8>)], retention: u64) -> Result<(), StoreError>;

    /// Lists `tenant_id`'s entries older than `before` (the newest if `None`), newest first.
    async fn list(
        &self,
        tenant_id: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<DeadLetterPage, StoreError>;
}

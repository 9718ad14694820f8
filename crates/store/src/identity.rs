//! Links from anonymous ids to known customers.

use crate::StoreError;

/// The result of recording a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    /// The link is new.
    Created,
    /// The same link was already recorded.
    Existing,
    /// The anonymous id is already linked to another customer; nothing changed.
    Conflict {
        /// The customer it is linked to.
        customer_id: String,
    },
}

/// Identity link storage.
#[async_trait::async_trait]
pub trait IdentityLinks: Send + Sync + 'static {
    /// Links `anonymous_id` to `customer_id` unless it is linked already (first link wins).
    async fn link(
        &self,
        tenant_id: &str,
        anonymous_id: &str,
        customer_id: &str,
    ) -> Result<LinkOutcome, StoreError>;

    /// The customer `anonymous_id` is linked to, if any.
    async fn resolve(
        &self,
        tenant_id: &str,
        anonymous_id: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Removes the link of `anonymous_id` (erasure of the customer it links to). Removing an
    /// absent link is not an error.
    async fn unlink(&self, tenant_id: &str, anonymous_id: &str) -> Result<(), StoreError>;
}

//! TouchpointService (ingest): the transport-neutral trait, its client and its error.

mod client;
mod error;

pub use client::TouchpointClient;
pub use error::IngestError;

pub use crate::pb::ingest::*;

/// What the ingest service does, independent of transport. Implemented by the ingest node
/// (in-process) and by [`TouchpointClient`] (local or over gRPC).
#[async_trait::async_trait]
pub trait TouchpointApi: Send + Sync + 'static {
    /// Validates, deduplicates and appends a batch; see the `Ingest` RPC.
    async fn ingest(&self, request: IngestRequest) -> Result<IngestResponse, IngestError>;
    /// Links an anonymous id to a customer; see the `Identify` RPC.
    async fn identify(&self, request: IdentifyRequest) -> Result<IdentifyResponse, IngestError>;
    /// Lists a tenant's dead letters, newest first; see the `ListRejected` RPC.
    async fn list_rejected(
        &self,
        request: ListRejectedRequest,
    ) -> Result<ListRejectedResponse, IngestError>;
}

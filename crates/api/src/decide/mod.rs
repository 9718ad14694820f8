//! DecisionService (decide): the transport-neutral trait, its client (in-process or gRPC) and
//! its error.

mod client;
mod error;

pub use client::DecideClient;
pub use error::{DecideError, OVERLOAD_RETRY_AFTER_MS};

pub use crate::pb::decide::*;

use std::pin::Pin;

use tokio_stream::Stream;

/// Outbound actions as they are published; an `Err` item ends the stream.
pub type OutboundStream = Pin<Box<dyn Stream<Item = Result<OutboundAction, DecideError>> + Send>>;

/// The largest configuration `PutConfig` accepts, in bytes (the contract's 4 MiB).
pub const MAX_CONFIG_BYTES: usize = 4 << 20;

/// The gRPC message limit of server and client: a configuration at the limit plus room for the
/// rest of the request.
pub const MAX_MESSAGE_BYTES: usize = MAX_CONFIG_BYTES + (1 << 20);

/// What the decision service does, independent of transport. Implemented by the decide node
/// (in-process) and by [`DecideClient`] (local or over gRPC).
#[async_trait::async_trait]
pub trait DecideApi: Send + Sync + 'static {
    /// Decides the next best actions; see the `Decide` RPC.
    async fn decide(&self, request: DecideRequest) -> Result<DecideResponse, DecideError>;
    /// Reports an outcome of a decision; see the `ReportOutcome` RPC.
    async fn report_outcome(
        &self,
        request: ReportOutcomeRequest,
    ) -> Result<ReportOutcomeResponse, DecideError>;
    /// Explains a logged decision; see the `ExplainDecision` RPC.
    async fn explain_decision(
        &self,
        request: ExplainDecisionRequest,
    ) -> Result<ExplainDecisionResponse, DecideError>;
    /// Replays a logged decision; see the `ReplayDecision` RPC.
    async fn replay_decision(
        &self,
        request: ReplayDecisionRequest,
    ) -> Result<ReplayDecisionResponse, DecideError>;
    /// Returns a configuration version; see the `GetConfig` RPC.
    async fn get_config(&self, request: GetConfigRequest)
    -> Result<GetConfigResponse, DecideError>;
    /// Validates and activates a configuration; see the `PutConfig` RPC.
    async fn put_config(&self, request: PutConfigRequest)
    -> Result<PutConfigResponse, DecideError>;
    /// Streams the tenant's outbound actions; see the `WatchOutbound` RPC.
    async fn watch_outbound(
        &self,
        request: WatchOutboundRequest,
    ) -> Result<OutboundStream, DecideError>;
}

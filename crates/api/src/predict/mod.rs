//! PredictionService (predict): the transport-neutral trait, its client (in-process or gRPC)
//! and its error.

mod client;
mod error;

pub use client::PredictClient;
pub use error::{FIELD_METADATA_KEY, PredictError, RETRY_AFTER_METADATA_KEY};

pub use crate::pb::predict::*;

/// The largest model artifact `RegisterModel` accepts, in bytes (the contract's 16 MiB).
pub const MAX_ARTIFACT_BYTES: usize = 16 << 20;

/// The gRPC message limit of server and client. Above [`MAX_ARTIFACT_BYTES`] by room for the
/// rest of the request, so an artifact at the limit reaches the service, and one past it gets an
/// INVALID_ARGUMENT naming `artifact` rather than a bare transport error.
pub const MAX_MESSAGE_BYTES: usize = MAX_ARTIFACT_BYTES + (1 << 20);

/// What the prediction service does, independent of transport. Implemented by the predict node
/// (in-process) and by [`PredictClient`] (local or over gRPC).
#[async_trait::async_trait]
pub trait PredictApi: Send + Sync + 'static {
    /// Scores one customer with the active models; see the `Score` RPC.
    async fn score(&self, request: ScoreRequest) -> Result<ScoreResponse, PredictError>;
    /// Lists the tenant's model versions and assignments; see the `ListModels` RPC.
    async fn list_models(
        &self,
        request: ListModelsRequest,
    ) -> Result<ListModelsResponse, PredictError>;
    /// Makes a version the champion of its kind, optionally with a challenger; see the
    /// `ActivateModel` RPC.
    async fn activate_model(
        &self,
        request: ActivateModelRequest,
    ) -> Result<ActivateModelResponse, PredictError>;
    /// Stores a trained model version; see the `RegisterModel` RPC.
    async fn register_model(
        &self,
        request: RegisterModelRequest,
    ) -> Result<RegisterModelResponse, PredictError>;
}

//! KpiService (kpi): the transport-neutral trait, its client (in-process or gRPC) and its error.

mod client;
mod error;

pub use client::KpiClient;
pub use error::KpiError;

pub use crate::pb::kpi::*;

/// What the KPI service answers, independent of transport. Implemented by the KPI node
/// (in-process) and by [`KpiClient`] (local or over gRPC).
#[async_trait::async_trait]
pub trait KpiApi: Send + Sync + 'static {
    /// Metric series; see the `QueryMetrics` RPC.
    async fn query_metrics(
        &self,
        request: QueryMetricsRequest,
    ) -> Result<QueryMetricsResponse, KpiError>;
    /// An experiment's arms and uplifts; see the `GetExperiment` RPC.
    async fn get_experiment(
        &self,
        request: GetExperimentRequest,
    ) -> Result<GetExperimentResponse, KpiError>;
    /// The metric catalogue; see the `ListMetrics` RPC.
    async fn list_metrics(
        &self,
        request: ListMetricsRequest,
    ) -> Result<ListMetricsResponse, KpiError>;
}

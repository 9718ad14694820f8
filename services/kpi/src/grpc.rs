//! The gRPC face of the KPI service: maps the generated tonic trait onto [`KpiApi`], with one
//! span and RED metrics per RPC and the one error-to-status mapping.

use std::sync::Arc;

use iee_api::kpi::{
    GetExperimentRequest, GetExperimentResponse, KpiApi, KpiError, ListMetricsRequest,
    ListMetricsResponse, QueryMetricsRequest, QueryMetricsResponse,
    kpi_service_server::{KpiService, KpiServiceServer},
};
use iee_telemetry::RpcMetrics;
use tonic::{Request, Response, Status};

/// Adapter from the generated gRPC trait to a [`KpiApi`] (the KPI node).
pub struct KpiGrpc {
    api: Arc<dyn KpiApi>,
    metrics: RpcMetrics,
}

impl std::fmt::Debug for KpiGrpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KpiGrpc").finish_non_exhaustive()
    }
}

/// `KpiService` over `api`, recording RED metrics into `metrics`.
pub fn service(api: Arc<dyn KpiApi>, metrics: RpcMetrics) -> KpiServiceServer<KpiGrpc> {
    KpiServiceServer::new(KpiGrpc { api, metrics })
}

impl KpiGrpc {
    async fn call<Req, T, Fut>(
        &self,
        rpc: &'static str,
        request: Request<Req>,
        work: impl FnOnce(Req) -> Fut,
    ) -> Result<Response<T>, Status>
    where
        Req: iee_api::tenancy::TenantScoped + prost::Message,
        Fut: Future<Output = Result<T, KpiError>>,
    {
        iee_runtime::serve_unary(&self.metrics, "kpi", rpc, request, work).await
    }
}

#[tonic::async_trait]
impl KpiService for KpiGrpc {
    async fn query_metrics(
        &self,
        request: Request<QueryMetricsRequest>,
    ) -> Result<Response<QueryMetricsResponse>, Status> {
        self.call("QueryMetrics", request, |r| self.api.query_metrics(r))
            .await
    }

    async fn get_experiment(
        &self,
        request: Request<GetExperimentRequest>,
    ) -> Result<Response<GetExperimentResponse>, Status> {
        self.call("GetExperiment", request, |r| self.api.get_experiment(r))
            .await
    }

    async fn list_metrics(
        &self,
        request: Request<ListMetricsRequest>,
    ) -> Result<Response<ListMetricsResponse>, Status> {
        self.call("ListMetrics", request, |r| self.api.list_metrics(r))
            .await
    }
}

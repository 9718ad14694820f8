//! A KpiService client that is either in-process or gRPC, behind one API.

use std::sync::Arc;

use tonic::transport::Channel;

use super::{
    GetExperimentRequest, GetExperimentResponse, KpiApi, KpiError, ListMetricsRequest,
    ListMetricsResponse, QueryMetricsRequest, QueryMetricsResponse,
    kpi_service_client::KpiServiceClient,
};
use crate::trace_context::traced;

/// Calls the KPI service in-process (standalone, tests) or over gRPC, with one API. Every
/// replica answers queries, so any of them will do.
#[derive(Clone)]
pub enum KpiClient {
    /// Direct calls into an in-process node.
    Local(Arc<dyn KpiApi>),
    /// Calls over a gRPC channel, each in a client span whose W3C trace context travels with
    /// the request (see [`crate::trace_context`]).
    Grpc(KpiServiceClient<Channel>),
}

impl std::fmt::Debug for KpiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(_) => f.write_str("KpiClient::Local"),
            Self::Grpc(_) => f.write_str("KpiClient::Grpc"),
        }
    }
}

impl KpiClient {
    /// Connects to `endpoint` (`host:port`, `http://…` or `https://…`), over the installed
    /// client TLS if any (see [`crate::transport`]).
    pub async fn connect(endpoint: String) -> Result<Self, KpiError> {
        let target = crate::transport::endpoint(&endpoint)
            .map_err(|e| KpiError::invalid("endpoint", e))?
            .tcp_nodelay(true);
        let channel = crate::transport::connect(target)
            .await
            .map_err(|e| KpiError::Unavailable(format!("connect to {endpoint}: {e}")))?;
        Ok(Self::Grpc(KpiServiceClient::new(channel)))
    }
}

#[async_trait::async_trait]
impl KpiApi for KpiClient {
    async fn query_metrics(
        &self,
        request: QueryMetricsRequest,
    ) -> Result<QueryMetricsResponse, KpiError> {
        match self {
            Self::Local(node) => node.query_metrics(request).await,
            Self::Grpc(client) => Ok(traced("kpi", "QueryMetrics", request, |r| async move {
                client.clone().query_metrics(r).await
            })
            .await?),
        }
    }

    async fn get_experiment(
        &self,
        request: GetExperimentRequest,
    ) -> Result<GetExperimentResponse, KpiError> {
        match self {
            Self::Local(node) => node.get_experiment(request).await,
            Self::Grpc(client) => Ok(traced("kpi", "GetExperiment", request, |r| async move {
                client.clone().get_experiment(r).await
            })
            .await?),
        }
    }

    async fn list_metrics(
        &self,
        request: ListMetricsRequest,
    ) -> Result<ListMetricsResponse, KpiError> {
        match self {
            Self::Local(node) => node.list_metrics(request).await,
            Self::Grpc(client) => Ok(traced("kpi", "ListMetrics", request, |r| async move {
                client.clone().list_metrics(r).await
            })
            .await?),
        }
    }
}

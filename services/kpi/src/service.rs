//! The KPI service's [`KpiApi`]: queries read the aggregates of every partition through the
//! [`Reader`].

use std::time::SystemTime;

use iee_api::kpi::{
    GetExperimentRequest, GetExperimentResponse, KpiApi, KpiError, ListMetricsRequest,
    ListMetricsResponse, QueryMetricsRequest, QueryMetricsResponse,
};

use crate::query::{self, Reader};

/// Answers queries.
pub(crate) struct KpiService {
    pub reader: Reader,
}

#[async_trait::async_trait]
impl KpiApi for KpiService {
    async fn query_metrics(
        &self,
        request: QueryMetricsRequest,
    ) -> Result<QueryMetricsResponse, KpiError> {
        query::query_metrics(&self.reader, request, SystemTime::now()).await
    }

    async fn get_experiment(
        &self,
        request: GetExperimentRequest,
    ) -> Result<GetExperimentResponse, KpiError> {
        query::get_experiment(&self.reader, request, SystemTime::now()).await
    }

    async fn list_metrics(
        &self,
        request: ListMetricsRequest,
    ) -> Result<ListMetricsResponse, KpiError> {
        query::list_metrics(request)
    }
}

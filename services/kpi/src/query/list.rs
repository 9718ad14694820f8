//! `ListMetrics`: the metric catalogue as descriptors.

use iee_api::kpi::{KpiError, ListMetricsRequest, ListMetricsResponse};

use super::request::check_tenant;
use crate::catalogue::metrics;

/// Answers a `ListMetrics` request: every metric of the catalogue, in catalogue order. Every
/// tenant has the same catalogue for now; the tenant is still required, as the contract says.
pub fn list_metrics(request: ListMetricsRequest) -> Result<ListMetricsResponse, KpiError> {
    check_tenant(&request.tenant_id)?;
    Ok(ListMetricsResponse {
        metrics: metrics().iter().map(|m| m.descriptor()).collect(),
    })
}

//! The current KPI values on the Prometheus endpoint: every `kpi.gauge_interval_secs`, the
//! dashboard metrics over the last 24 hours per tenant (overall and per channel) and the global
//! holdout's uplifts, for at most `kpi.gauge_max_tenants` tenants. Labels stay bounded: tenant ×
//! metric × channel, nothing per customer, action or touchpoint.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iee_api::{
    kpi::{Dimension, GetExperimentRequest, KpiError, QueryMetricsRequest},
    pb::common::Channel,
};

use crate::{
    metrics::{KpiMetrics, UpliftLabels, ValueLabels},
    query::{self, Reader},
};

/// The metrics exported as gauges.
pub(crate) const DASHBOARD_METRICS: [&str; 14] = [
    "nps",
    "csat",
    "ces",
    "conversion_rate",
    "click_through_rate",
    "acceptance_rate",
    "engaged_session_rate",
    "bounce_rate",
    "churn_rate",
    "revenue",
    "average_order_value",
    "contact_rate",
    "peak_end_score",
    "active_customers",
];

/// The experiment metrics whose uplift in the global holdout is exported.
pub(crate) const UPLIFT_METRICS: [&str; 3] = ["conversion_rate", "revenue_per_customer", "nps"];

/// The experiment whose uplift is exported.
const GLOBAL: &str = "global";

/// The window of the gauges: the last 24 whole hours and the current one.
fn window(now: SystemTime) -> (SystemTime, SystemTime) {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let hour_end = (secs / 3_600 + 1) * 3_600;
    (
        UNIX_EPOCH + Duration::from_secs(hour_end.saturating_sub(25 * 3_600)),
        UNIX_EPOCH + Duration::from_secs(hour_end),
    )
}

/// Recomputes every gauge.
pub(crate) async fn refresh(reader: &Reader, metrics: &KpiMetrics, max_tenants: usize) {
    let tenants = match reader.store.kpi_tenants(reader.partitions).await {
        Ok(tenants) => tenants,
        Err(err) => {
            tracing::warn!(error = %err, "listing tenants for the kpi gauges failed");
            return;
        }
    };
    metrics.values.clear();
    metrics.uplifts.clear();
    for tenant in tenants.into_iter().take(max_tenants) {
        if let Err(err) = refresh_tenant(reader, metrics, &tenant).await {
            tracing::warn!(tenant, error = %err, "refreshing the kpi gauges failed");
        }
    }
}

async fn refresh_tenant(
    reader: &Reader,
    metrics: &KpiMetrics,
    tenant: &str,
) -> Result<(), KpiError> {
    let now = SystemTime::now();
    let (start, end) = window(now);
    for group_by in [vec![], vec![Dimension::Channel as i32]] {
        let request = QueryMetricsRequest {
            tenant_id: tenant.to_owned(),
            metrics: DASHBOARD_METRICS.iter().map(|m| (*m).to_owned()).collect(),
            start_time: Some(start.into()),
            end_time: Some(end.into()),
            group_by,
            ..QueryMetricsRequest::default()
        };
        let response = query::query_metrics(reader, request, now).await?;
        for series in response.series {
            let Some(metric) = DASHBOARD_METRICS.iter().find(|m| **m == series.metric) else {
                continue;
            };
            let channel = series
                .group
                .first()
                .map_or_else(|| "all".to_owned(), |g| channel_label(&g.value));
            if let Some(point) = series.points.first() {
                metrics
                    .values
                    .get_or_create(&ValueLabels {
                        tenant: tenant.to_owned(),
                        metric,
                        channel,
                    })
                    .set(point.value);
            }
        }
    }
    let experiment = query::get_experiment(
        reader,
        GetExperimentRequest {
            tenant_id: tenant.to_owned(),
            experiment_id: GLOBAL.to_owned(),
            metrics: UPLIFT_METRICS.iter().map(|m| (*m).to_owned()).collect(),
            ..GetExperimentRequest::default()
        },
        now,
    )
    .await;
    let experiment = match experiment {
        Ok(response) => response.experiment.unwrap_or_default(),
        // No global holdout (yet): nothing to export.
        Err(KpiError::NotFound(_)) => return Ok(()),
        Err(err) => return Err(err),
    };
    for arm in experiment
        .arms
        .iter()
        .filter(|a| a.name != experiment.control_arm)
    {
        for arm_metric in &arm.metrics {
            let (Some(metric), Some(uplift)) = (
                UPLIFT_METRICS.iter().find(|m| **m == arm_metric.metric),
                arm_metric.uplift.as_ref(),
            ) else {
                continue;
            };
            let interval = uplift.absolute_interval.unwrap_or_default();
            for (bound, value) in [
                ("value", uplift.absolute),
                ("lower", interval.lower),
                ("upper", interval.upper),
            ] {
                metrics
                    .uplifts
                    .get_or_create(&UpliftLabels {
                        tenant: tenant.to_owned(),
                        experiment: GLOBAL,
                        metric,
                        bound,
                    })
                    .set(value);
            }
        }
    }
    Ok(())
}

/// `CHANNEL_WEB` → `web`.
fn channel_label(value: &str) -> String {
    Channel::from_str_name(value).map_or_else(
        || value.to_ascii_lowercase(),
        |_| value.trim_start_matches("CHANNEL_").to_ascii_lowercase(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_covers_the_last_day_in_whole_hours() {
        let now = UNIX_EPOCH + Duration::from_secs(100 * 3_600 + 1_234);
        let (start, end) = window(now);
        assert_eq!(end, UNIX_EPOCH + Duration::from_secs(101 * 3_600));
        assert_eq!(start, UNIX_EPOCH + Duration::from_secs(76 * 3_600));
        assert_eq!(channel_label("CHANNEL_WEB"), "web");
    }
}

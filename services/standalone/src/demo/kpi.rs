//! What the demo asks the KPI service: whether it has measured every decision and event yet,
//! the global holdout experiment (treatment against holdout, with intervals and p-values), and
//! per-minute series for demos long enough to have several minutes.

use std::{
    collections::HashMap,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use iee_api::kpi::{
    Dimension, DimensionFilter, GetExperimentRequest, KpiApi, KpiClient, ListMetricsRequest,
    QueryMetricsRequest,
};
use serde::Serialize;

use super::catalogue::TENANT;

/// The experiment of the global holdout.
pub const EXPERIMENT: &str = "global";

/// The metrics of the KPI table, in order.
pub const METRICS: [&str; 5] = [
    "nps",
    "csat",
    "customer_conversion_rate",
    "customer_churn_rate",
    "revenue_per_customer",
];

/// The metrics of the per-minute plot (measurable per visit, so per minute).
pub const SERIES_METRICS: [&str; 3] = ["nps", "csat", "conversion_rate"];

/// The KPI service's answer for the global holdout.
#[derive(Debug, Clone, Serialize)]
pub struct KpiTable {
    /// The arms, control (holdout) first.
    pub arms: Vec<ArmRow>,
    /// p-value of the sample ratio mismatch test.
    pub srm_p_value: f64,
    /// One row per metric of [`METRICS`].
    pub metrics: Vec<MetricRow>,
}

/// One arm's size.
#[derive(Debug, Clone, Serialize)]
pub struct ArmRow {
    /// `control` (the holdout) or `treatment`.
    pub name: String,
    /// Planned share of customers.
    pub allocation: f64,
    /// Customers assigned to it.
    pub customers: u64,
    /// Decisions made for it.
    pub decisions: u64,
}

/// One metric, treatment against holdout.
#[derive(Debug, Clone, Serialize)]
pub struct MetricRow {
    /// The metric's name.
    pub metric: String,
    /// Its unit (`1`, `score`, `currency_minor`).
    pub unit: String,
    /// True if larger is better.
    pub higher_is_better: bool,
    /// Treatment value.
    pub treatment: f64,
    /// Observations behind it.
    pub treatment_count: u64,
    /// Holdout value.
    pub holdout: f64,
    /// Observations behind it.
    pub holdout_count: u64,
    /// Treatment minus holdout, with its interval and test; absent when it cannot be computed.
    pub uplift: Option<UpliftRow>,
}

/// An uplift with its 95 % interval.
#[derive(Debug, Clone, Serialize)]
pub struct UpliftRow {
    /// Treatment minus holdout.
    pub absolute: f64,
    /// Lower end of its interval.
    pub lower: f64,
    /// Upper end.
    pub upper: f64,
    /// Treatment / holdout − 1 (0 when the holdout value is 0).
    pub relative: f64,
    /// Two-sided p-value of "no difference".
    pub p_value: f64,
    /// The test.
    pub method: String,
}

/// How far the KPI service got when the demo stopped waiting.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CatchUp {
    /// Decisions it had measured.
    pub decisions: u64,
    /// Events it had measured.
    pub events: u64,
    /// True if both matched what the demo sent.
    pub complete: bool,
    /// How long the demo waited, in seconds.
    pub waited_secs: f64,
}

/// Polls `decisions` and `events` since `start` until they reach the expected counts or
/// `timeout` passes.
pub async fn wait_for(
    kpi: &KpiClient,
    start: SystemTime,
    decisions: u64,
    events: u64,
    timeout: Duration,
) -> anyhow::Result<CatchUp> {
    let begun = Instant::now();
    loop {
        let counts = totals(kpi, start).await?;
        let seen = |m: &str| counts.get(m).copied().unwrap_or(0);
        let (d, e) = (seen("decisions"), seen("events"));
        let complete = d >= decisions && e >= events;
        if complete || begun.elapsed() > timeout {
            return Ok(CatchUp {
                decisions: d,
                events: e,
                complete,
                waited_secs: begun.elapsed().as_secs_f64(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The whole-range counts of `decisions` and `events` since `start`.
async fn totals(kpi: &KpiClient, start: SystemTime) -> anyhow::Result<HashMap<String, u64>> {
    let response = kpi
        .query_metrics(QueryMetricsRequest {
            tenant_id: TENANT.to_owned(),
            metrics: vec!["decisions".to_owned(), "events".to_owned()],
            start_time: Some(minute_floor(start).into()),
            end_time: Some(minute_floor(SystemTime::now() + Duration::from_secs(120)).into()),
            ..QueryMetricsRequest::default()
        })
        .await
        .context("querying the KPI service for decisions and events")?;
    Ok(response
        .series
        .iter()
        .map(|s| {
            let total = s.points.iter().map(|p| p.value).sum::<f64>();
            (s.metric.clone(), total.round() as u64)
        })
        .collect())
}

/// The start of the minute `t` falls in.
pub fn minute_floor(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs - secs % 60)
}

/// The global holdout experiment with the metrics of [`METRICS`].
pub async fn experiment(kpi: &KpiClient) -> anyhow::Result<KpiTable> {
    let catalogue = kpi
        .list_metrics(ListMetricsRequest {
            tenant_id: TENANT.to_owned(),
        })
        .await
        .context("listing the KPI metrics")?;
    let experiment = kpi
        .get_experiment(GetExperimentRequest {
            tenant_id: TENANT.to_owned(),
            experiment_id: EXPERIMENT.to_owned(),
            metrics: METRICS.iter().map(|&m| m.to_owned()).collect(),
            ..GetExperimentRequest::default()
        })
        .await
        .context("reading the global holdout experiment")?
        .experiment
        .context("the KPI service answered without an experiment")?;
    let arm = |name: &str| experiment.arms.iter().find(|a| a.name == name);
    let (control, treatment) = (arm("control"), arm("treatment"));
    let metrics = METRICS
        .iter()
        .map(|&name| {
            let descriptor = catalogue.metrics.iter().find(|m| m.name == name);
            let of = |a: Option<&iee_api::kpi::Arm>| {
                a.and_then(|a| a.metrics.iter().find(|m| m.metric == name))
                    .cloned()
            };
            let (t, c) = (of(treatment), of(control));
            MetricRow {
                metric: name.to_owned(),
                unit: descriptor.map_or_else(String::new, |d| d.unit.clone()),
                higher_is_better: descriptor.is_none_or(|d| d.higher_is_better),
                treatment: t.as_ref().map_or(0.0, |m| m.value),
                treatment_count: t.as_ref().map_or(0, |m| m.count),
                holdout: c.as_ref().map_or(0.0, |m| m.value),
                holdout_count: c.as_ref().map_or(0, |m| m.count),
                uplift: t.and_then(|m| m.uplift).map(|u| {
                    let (lower, upper) = u
                        .absolute_interval
                        .map_or((f64::NAN, f64::NAN), |i| (i.lower, i.upper));
                    UpliftRow {
                        absolute: u.absolute,
                        lower,
                        upper,
                        relative: u.relative,
                        p_value: u.p_value,
                        method: u.method,
                    }
                }),
            }
        })
        .collect();
    Ok(KpiTable {
        arms: experiment
            .arms
            .iter()
            .map(|a| ArmRow {
                name: a.name.clone(),
                allocation: a.allocation,
                customers: a.customers,
                decisions: a.decisions,
            })
            .collect(),
        srm_p_value: experiment.sample_ratio_p_value,
        metrics,
    })
}

/// One metric of one arm per minute.
#[derive(Debug, Clone, Serialize)]
pub struct MinuteSeries {
    /// The metric.
    pub metric: String,
    /// `control` or `treatment`.
    pub arm: String,
    /// (minutes since the first bucket, value) per minute with data.
    pub points: Vec<(f64, f64)>,
}

/// The per-minute series of [`SERIES_METRICS`] for both arms of the global holdout.
pub async fn minute_series(
    kpi: &KpiClient,
    start: SystemTime,
) -> anyhow::Result<Vec<MinuteSeries>> {
    let first = minute_floor(start);
    let response = kpi
        .query_metrics(QueryMetricsRequest {
            tenant_id: TENANT.to_owned(),
            metrics: SERIES_METRICS.iter().map(|&m| m.to_owned()).collect(),
            start_time: Some(first.into()),
            end_time: Some(minute_floor(SystemTime::now() + Duration::from_secs(60)).into()),
            bucket_width: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
            group_by: vec![Dimension::ExperimentArm as i32],
            filters: vec![DimensionFilter {
                dimension: Dimension::ExperimentArm as i32,
                values: vec![
                    format!("{EXPERIMENT}/control"),
                    format!("{EXPERIMENT}/treatment"),
                ],
            }],
            ..QueryMetricsRequest::default()
        })
        .await
        .context("querying per-minute KPIs")?;
    let origin = first.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    Ok(response
        .series
        .into_iter()
        .map(|s| MinuteSeries {
            metric: s.metric,
            arm: s
                .group
                .first()
                .map(|g| g.value.trim_start_matches("global/").to_owned())
                .unwrap_or_default(),
            points: s
                .points
                .iter()
                .filter_map(|p| {
                    let t = p.start_time.as_ref()?;
                    Some(((t.seconds - origin) as f64 / 60.0, p.value))
                })
                .collect(),
        })
        .collect())
}

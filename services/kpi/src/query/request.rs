//! Validation of `QueryMetrics` requests into a [`Query`], and the checks `GetExperiment` and
//! `ListMetrics` share with it; every refusal names the offending field.

use std::collections::HashSet;
use std::time::SystemTime;

use iee_api::kpi::{Dimension, KpiError, QueryMetricsRequest};

use super::time::{Instant, whole_minutes};
use crate::catalogue::{self, Metric, Scope};
use crate::fields::Dims;
use crate::stats::{check_level, level_or_default};

/// Most metrics one request may ask for.
pub(super) const MAX_METRICS: usize = 20;
/// Most group-by dimensions.
const MAX_GROUP_BY: usize = 3;
/// Most buckets in one series.
const MAX_BUCKETS: i64 = 10_000;
/// Seconds per minute: the finest bucket width.
const MINUTE: i64 = 60;
/// Seconds per day: the width unit of cohort metrics.
const DAY: i64 = 86_400;

/// A validated `QueryMetrics` request.
#[derive(Debug)]
pub(super) struct Query {
    /// The tenant.
    pub tenant: String,
    /// The metrics, in request order.
    pub metrics: Vec<&'static Metric>,
    /// Start of the range in Unix seconds, rounded down to a whole minute.
    pub start: i64,
    /// End of the range (exclusive) in Unix seconds, rounded up to a whole minute.
    pub end: i64,
    /// Bucket width in seconds (a whole number of minutes); `None`: one bucket for the range.
    pub width: Option<i64>,
    /// The group-by dimensions, in request order.
    pub group_by: Vec<Dimension>,
    /// The filters, all of which must match.
    pub filters: Vec<Filter>,
    /// The confidence level of the intervals.
    pub level: f64,
}

/// One validated filter.
#[derive(Debug)]
pub(super) struct Filter {
    /// The dimension.
    pub dimension: Dimension,
    /// The accepted values.
    pub values: HashSet<String>,
}

impl Query {
    /// Whether the query reads the per-experiment-arm rows instead of the overall ones.
    pub(super) fn arm_rows(&self) -> bool {
        self.group_by.contains(&Dimension::ExperimentArm)
            || self
                .filters
                .iter()
                .any(|f| f.dimension == Dimension::ExperimentArm)
    }

    /// The group-by values of a row, or `None` when the row is not counted (a row of the other
    /// kind, or one a filter rejects).
    pub(super) fn group_of(&self, dims: &Dims, arm_rows: bool) -> Option<Vec<String>> {
        if dims.arm.is_empty() == arm_rows {
            return None;
        }
        let matches = self
            .filters
            .iter()
            .all(|f| f.values.contains(&dims.value(f.dimension)));
        matches.then(|| self.group_by.iter().map(|&d| dims.value(d)).collect())
    }
}

/// Validates a `QueryMetrics` request; `now` is the default end of the range.
pub(super) fn validate(request: QueryMetricsRequest, now: SystemTime) -> Result<Query, KpiError> {
    check_tenant(&request.tenant_id)?;
    let metrics = check_metrics(&request.metrics)?;
    let start = request
        .start_time
        .as_ref()
        .ok_or_else(|| KpiError::invalid("start_time", "is required"))
        .and_then(|t| Instant::from_timestamp("start_time", t))?;
    let end = match &request.end_time {
        Some(t) => Instant::from_timestamp("end_time", t)?,
        None => Instant::from_system(now),
    };
    if end <= start {
        return Err(KpiError::invalid(
            "end_time",
            "must be after start_time (end_time defaults to now)",
        ));
    }
    let (start, end) = (start.floor(MINUTE), end.ceil(MINUTE));
    let width = match &request.bucket_width {
        Some(d) => whole_minutes("bucket_width", d)?,
        None => None,
    };
    if let Some(width) = width {
        check_width(&metrics, start, end, width)?;
    }
    let level = check_confidence(request.confidence_level)?;
    let group_by = check_group_by(&request.group_by, &metrics)?;
    let mut filters = Vec::with_capacity(request.filters.len());
    for (i, filter) in request.filters.into_iter().enumerate() {
        let field = format!("filters[{i}].dimension");
        let dimension = check_dimension(&field, filter.dimension, &metrics)?;
        if filter.values.is_empty() {
            return Err(KpiError::invalid(
                format!("filters[{i}].values"),
                "at least one value is required",
            ));
        }
        filters.push(Filter {
            dimension,
            values: filter.values.into_iter().collect(),
        });
    }
    let query = Query {
        tenant: request.tenant_id,
        metrics,
        start,
        end,
        width,
        group_by,
        filters,
        level,
    };
    if !query.arm_rows()
        && let Some(m) = query
            .metrics
            .iter()
            .find(|m| m.scope == Scope::ExperimentArms)
    {
        return Err(KpiError::invalid(
            "group_by",
            format!(
                "metric {} is measured per experiment arm: group or filter by DIMENSION_EXPERIMENT_ARM",
                m.name
            ),
        ));
    }
    Ok(query)
}

/// Refuses an empty tenant.
pub(super) fn check_tenant(tenant: &str) -> Result<(), KpiError> {
    if tenant.is_empty() {
        return Err(KpiError::invalid("tenant_id", "is required"));
    }
    Ok(())
}

/// Looks up 1 to [`MAX_METRICS`] distinct metric names in the catalogue.
pub(super) fn check_metrics(names: &[String]) -> Result<Vec<&'static Metric>, KpiError> {
    if names.is_empty() {
        return Err(KpiError::invalid(
            "metrics",
            "at least one metric is required",
        ));
    }
    if names.len() > MAX_METRICS {
        return Err(KpiError::invalid(
            "metrics",
            format!("at most {MAX_METRICS} metrics, got {}", names.len()),
        ));
    }
    let mut metrics: Vec<&'static Metric> = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let field = format!("metrics[{i}]");
        let metric = catalogue::metric(name).ok_or_else(|| {
            KpiError::invalid(&field, format!("unknown metric {name:?} (see ListMetrics)"))
        })?;
        if metrics.iter().any(|m| m.name == metric.name) {
            return Err(KpiError::invalid(
                field,
                format!("metric {name:?} is listed twice"),
            ));
        }
        metrics.push(metric);
    }
    Ok(metrics)
}

/// The confidence level, 0 meaning the default.
pub(super) fn check_confidence(level: f64) -> Result<f64, KpiError> {
    check_level(level_or_default(level))
        .map_err(|e| KpiError::invalid("confidence_level", e.to_string()))
}

/// Checks a bucket width (seconds) against the metrics and the range `[start, end)`.
fn check_width(metrics: &[&Metric], start: i64, end: i64, width: i64) -> Result<(), KpiError> {
    if let Some(m) = metrics.iter().find(|m| m.cohort)
        && width % DAY != 0
    {
        return Err(KpiError::invalid(
            "bucket_width",
            format!(
                "metric {} counts cohorts by the day of their first interaction: use whole days, got {}s",
                m.name, width
            ),
        ));
    }
    let buckets = (end - 1).div_euclid(width) - start.div_euclid(width) + 1;
    if buckets > MAX_BUCKETS {
        return Err(KpiError::invalid(
            "bucket_width",
            format!(
                "the range spans {buckets} buckets of {}min, at most {MAX_BUCKETS} are allowed: widen the buckets or shorten the range",
                width / MINUTE
            ),
        ));
    }
    Ok(())
}

/// Checks the group-by dimensions: at most [`MAX_GROUP_BY`], set, distinct, and supported by
/// every metric.
fn check_group_by(group_by: &[i32], metrics: &[&Metric]) -> Result<Vec<Dimension>, KpiError> {
    if group_by.len() > MAX_GROUP_BY {
        return Err(KpiError::invalid(
            "group_by",
            format!("at most {MAX_GROUP_BY} dimensions, got {}", group_by.len()),
        ));
    }
    let mut dimensions = Vec::with_capacity(group_by.len());
    for (i, &value) in group_by.iter().enumerate() {
        let field = format!("group_by[{i}]");
        let dimension = check_dimension(&field, value, metrics)?;
        if dimensions.contains(&dimension) {
            return Err(KpiError::invalid(
                field,
                format!("{} is listed twice", dimension.as_str_name()),
            ));
        }
        dimensions.push(dimension);
    }
    Ok(dimensions)
}

/// The dimension numbered `value`: set, known, and one every metric can be split by.
fn check_dimension(field: &str, value: i32, metrics: &[&Metric]) -> Result<Dimension, KpiError> {
    let dimension = match Dimension::try_from(value) {
        Ok(Dimension::Unspecified) => {
            return Err(KpiError::invalid(field, "the dimension must be set"));
        }
        Ok(d) => d,
        Err(_) => {
            return Err(KpiError::invalid(
                field,
                format!("unknown dimension {value}"),
            ));
        }
    };
    if let Some(m) = metrics.iter().find(|m| !m.dimensions.contains(&dimension)) {
        return Err(KpiError::invalid(
            field,
            format!(
                "metric {} cannot be split or filtered by {}",
                m.name,
                dimension.as_str_name()
            ),
        ));
    }
    Ok(dimension)
}

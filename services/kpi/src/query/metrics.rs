//! `QueryMetrics`: validates the request, plans the read, sums the matching rows per group and
//! output bucket, and turns each bucket into a point of its metric's series.

use std::collections::HashSet;
use std::time::SystemTime;

use iee_api::kpi::{
    DimensionValue, KpiError, Point, QueryMetricsRequest, QueryMetricsResponse, Series,
};

use super::estimate::{estimate, interval_pb, stats_of};
use super::plan::plan;
use super::reader::Reader;
use super::request::{Query, validate};
use super::time::timestamp;

/// Answers a `QueryMetrics` request at time `now` (the default end of the range): one series
/// per metric and group with data, metrics in request order, groups sorted by their values.
pub async fn query_metrics(
    reader: &Reader,
    request: QueryMetricsRequest,
    now: SystemTime,
) -> Result<QueryMetricsResponse, KpiError> {
    let query = validate(request, now)?;
    let plan = plan(&query, reader.max_store_buckets)?;
    let stats: HashSet<&str> = query
        .metrics
        .iter()
        .flat_map(|m| stats_of(&m.formula))
        .collect();
    let arm_rows = query.arm_rows();
    let table = reader
        .sum_rows(
            &query.tenant,
            plan.granularity,
            &plan.store_buckets(),
            &stats,
            |dims| query.group_of(dims, arm_rows),
            |bucket| plan.output_bucket(bucket),
        )
        .await?;
    let mut series = Vec::new();
    for metric in &query.metrics {
        for (group, buckets) in &table {
            let points: Vec<Point> = buckets
                .iter()
                .filter_map(|(&start, sums)| {
                    let e = estimate(&metric.formula, sums, query.level)?;
                    Some(Point {
                        start_time: Some(timestamp(start)),
                        value: e.value,
                        count: e.count,
                        interval: e.interval.map(interval_pb),
                    })
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            series.push(Series {
                metric: metric.name.clone(),
                group: group_values(&query, group),
                unit: metric.unit.to_owned(),
                points,
            });
        }
    }
    Ok(QueryMetricsResponse { series })
}

/// The group-by values of a series, paired with their dimensions.
fn group_values(query: &Query, group: &[String]) -> Vec<DimensionValue> {
    query
        .group_by
        .iter()
        .zip(group)
        .map(|(&dimension, value)| DimensionValue {
            dimension: dimension as i32,
            value: value.clone(),
        })
        .collect()
}

//! Tests of the query side on the in-memory store: hand-written commits, hand-computed
//! expectations.

mod experiment;
mod metrics;
mod rollup;
mod validation;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iee_api::kpi::{
    Dimension, DimensionFilter, KpiError, QueryMetricsRequest, QueryMetricsResponse, Series,
};
use iee_store::{
    Granularity, KpiCommit, KpiIncrement, KpiMark, KpiStore, MarkOp, MemoryStore, OffsetMove,
};
use prost_types::Timestamp;

use super::{Reader, query_metrics};
use crate::fields::{Dims, field};

/// A UTC midnight: 2023-11-14T00:00:00Z.
const DAY0: i64 = 1_699_920_000;
/// Seconds per minute.
const MIN: i64 = 60;
/// Seconds per hour.
const HOUR: i64 = 3_600;
/// Seconds per day.
const DAY: i64 = 86_400;
/// The tenant of every test.
const TENANT: &str = "acme";
/// Measurement partitions of the test store (one shard each).
const PARTITIONS: u32 = 2;
/// The two-sided 95 % normal critical value, written out rather than computed with the code
/// under test.
const Z95: f64 = 1.959_963_984_540_054;

/// What one commit adds: increments in every granularity, and marks.
#[derive(Default)]
struct Data {
    increments: Vec<KpiIncrement>,
    marks: Vec<KpiMark>,
}

impl Data {
    /// Adds `delta` to `stat` of the row `dims` at second `at`, in the bucket of every
    /// granularity (as the fold does).
    fn add(&mut self, at: i64, stat: &str, dims: &Dims, delta: f64) -> &mut Self {
        for granularity in Granularity::ALL {
            self.add_in(granularity, at, stat, dims, delta);
        }
        self
    }

    /// Adds `delta` in the bucket of one granularity only.
    fn add_in(
        &mut self,
        granularity: Granularity,
        at: i64,
        stat: &str,
        dims: &Dims,
        delta: f64,
    ) -> &mut Self {
        self.increments.push(KpiIncrement {
            tenant_id: TENANT.into(),
            granularity,
            bucket: granularity.bucket_of(at),
            field: field(stat, dims),
            delta,
            expires_at_ms: i64::MAX,
        });
        self
    }

    /// Adds a bookkeeping mark.
    fn mark(&mut self, field: &str, op: MarkOp, value: f64) -> &mut Self {
        self.marks.push(KpiMark {
            tenant_id: TENANT.into(),
            field: field.into(),
            op,
            value,
        });
        self
    }
}

/// An empty store of [`PARTITIONS`] partitions.
fn store() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new(PARTITIONS))
}

/// Commits `data` in `partition` (as the batch of its shard of the same number), after
/// whatever the partition holds.
async fn commit(store: &MemoryStore, partition: u32, data: &Data) {
    let expected = store
        .kpi_offsets(partition, &[partition])
        .await
        .unwrap()
        .remove(0);
    let next = expected.as_deref().map_or(0, |o| o.parse::<u64>().unwrap()) + 1;
    let applied = store
        .kpi_commit(&KpiCommit {
            partition,
            offsets: vec![OffsetMove {
                shard: partition,
                expected,
                offset: next.to_string(),
            }],
            increments: data.increments.clone(),
            marks: data.marks.clone(),
            tenants: vec![TENANT.into()],
            ..KpiCommit::default()
        })
        .await
        .unwrap();
    assert!(applied);
}

/// A reader of `store`.
fn reader(store: &Arc<MemoryStore>) -> Reader {
    Reader::new(store.clone(), PARTITIONS)
}

/// A timestamp `seconds` after the epoch.
fn at(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

/// "Now" in every test: ten days after [`DAY0`].
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs((DAY0 + 10 * DAY) as u64)
}

/// A request for `metrics` over `[start, end)` in one bucket.
fn request(metrics: &[&str], start: i64, end: i64) -> QueryMetricsRequest {
    QueryMetricsRequest {
        tenant_id: TENANT.into(),
        metrics: metrics.iter().map(|&m| m.to_owned()).collect(),
        start_time: Some(at(start)),
        end_time: Some(at(end)),
        ..QueryMetricsRequest::default()
    }
}

/// A bucket width of `minutes`.
fn minutes(minutes: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: minutes * MIN,
        nanos: 0,
    })
}

/// A filter on `dimension`.
fn filter(dimension: Dimension, values: &[&str]) -> DimensionFilter {
    DimensionFilter {
        dimension: dimension as i32,
        values: values.iter().map(|&v| v.to_owned()).collect(),
    }
}

/// Runs a query that must succeed.
async fn query(reader: &Reader, request: QueryMetricsRequest) -> QueryMetricsResponse {
    query_metrics(reader, request, now()).await.unwrap()
}

/// The group values of a series.
fn group(series: &Series) -> Vec<&str> {
    series.group.iter().map(|g| g.value.as_str()).collect()
}

/// Web-channel dimensions with the given action (empty: none).
fn web(action: &str) -> Dims {
    Dims {
        channel: 1,
        action: action.into(),
        ..Dims::default()
    }
}

/// App-channel dimensions with the given action.
fn app(action: &str) -> Dims {
    Dims {
        channel: 2,
        action: action.into(),
        ..Dims::default()
    }
}

/// Asserts `actual` is within `tolerance` of `expected`.
#[track_caller]
fn close(actual: f64, expected: f64, tolerance: f64) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{actual} is not within {tolerance} of {expected}"
    );
}

#[test]
fn query_futures_can_cross_threads() {
    fn send<T: Send>(_: &T) {}
    let reader = reader(&store());
    send(&query_metrics(
        &reader,
        request(&["events"], DAY0, DAY0 + DAY),
        now(),
    ));
    send(&super::get_experiment(&reader, Default::default(), now()));
}

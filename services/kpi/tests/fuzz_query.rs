//! Property-based fuzzing of `QueryMetrics` request validation: arbitrary requests against an
//! empty store never panic, and every refusal names a field of the request and says why.

#![allow(clippy::unwrap_used)]

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use iee_api::{
    kpi::KpiError,
    pb::kpi::{DimensionFilter, QueryMetricsRequest},
};
use iee_kpi::{
    catalogue,
    query::{Reader, query_metrics},
};
use iee_store::MemoryStore;
use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};
use prost_types::Timestamp;

/// Cases per property: cheap enough for CI.
const CASES: u32 = 384;

/// The request's fields, which every refusal must start with.
const FIELDS: [&str; 8] = [
    "tenant_id",
    "metrics",
    "start_time",
    "end_time",
    "bucket_width",
    "group_by",
    "filters",
    "confidence_level",
];

fn metric_name() -> BoxedStrategy<String> {
    let known: Vec<String> = catalogue::metrics()
        .iter()
        .map(|m| m.name.clone())
        .collect();
    prop_oneof![
        4 => prop::sample::select(known),
        1 => any::<String>(),
        1 => Just(String::new()),
    ]
    .boxed()
}

fn timestamp() -> BoxedStrategy<Option<Timestamp>> {
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let seconds = prop_oneof![
        4 => (now - 90 * 86_400)..=(now + 3_600),
        1 => any::<i64>(),
        1 => prop::sample::select(vec![i64::MIN, -1, 0, i64::MAX, 253_402_300_800]),
    ];
    let nanos = prop_oneof![4 => 0..1_000_000_000i32, 1 => any::<i32>()];
    prop::option::weighted(
        0.9,
        (seconds, nanos).prop_map(|(seconds, nanos)| Timestamp { seconds, nanos }),
    )
    .boxed()
}

fn bucket_width() -> BoxedStrategy<Option<prost_types::Duration>> {
    let seconds = prop_oneof![
        3 => prop::sample::select(vec![0i64, 1, 59, 60, 300, 3_600, 86_400, 7 * 86_400]),
        1 => any::<i64>(),
    ];
    let nanos = prop_oneof![4 => Just(0i32), 1 => any::<i32>()];
    prop::option::weighted(
        0.7,
        (seconds, nanos).prop_map(|(seconds, nanos)| prost_types::Duration { seconds, nanos }),
    )
    .boxed()
}

fn dimension() -> BoxedStrategy<i32> {
    prop_oneof![4 => 0..=5i32, 1 => any::<i32>()].boxed()
}

fn request() -> BoxedStrategy<QueryMetricsRequest> {
    let filter = (
        dimension(),
        prop::collection::vec("[a-z0-9_]{0,8}|\\PC{0,4}", 0..4),
    )
        .prop_map(|(dimension, values)| DimensionFilter { dimension, values });
    (
        prop_oneof![4 => "[a-z0-9_-]{1,12}", 1 => any::<String>(), 1 => Just(String::new())],
        prop::collection::vec(metric_name(), 0..4),
        timestamp(),
        timestamp(),
        bucket_width(),
        prop::collection::vec(dimension(), 0..3),
        prop::collection::vec(filter, 0..3),
        prop_oneof![
            3 => Just(0.0),
            2 => 0.0..1.0f64,
            1 => prop::sample::select(vec![
                -0.1,
                0.5,
                0.95,
                0.999_999,
                1.0,
                f64::NAN,
                f64::INFINITY,
            ]),
        ],
    )
        .prop_map(
            |(
                tenant_id,
                metrics,
                start_time,
                end_time,
                bucket_width,
                group_by,
                filters,
                confidence_level,
            )| QueryMetricsRequest {
                tenant_id,
                metrics,
                start_time,
                end_time,
                bucket_width,
                group_by,
                filters,
                confidence_level,
            },
        )
        .boxed()
}

/// A request that is usually valid: one known metric over the last day.
fn plausible_request() -> BoxedStrategy<QueryMetricsRequest> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let start = i64::try_from(now).unwrap() - 86_400;
    (
        metric_name(),
        prop::option::of(Just(prost_types::Duration {
            seconds: 86_400,
            nanos: 0,
        })),
    )
        .prop_map(move |(metric, bucket_width)| QueryMetricsRequest {
            tenant_id: "acme".to_owned(),
            metrics: vec![metric],
            start_time: Some(Timestamp {
                seconds: start,
                nanos: 0,
            }),
            bucket_width,
            ..QueryMetricsRequest::default()
        })
        .boxed()
}

#[test]
fn arbitrary_queries_never_panic_and_refusals_name_a_field() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reader = Reader::new(Arc::new(MemoryStore::new(4)), 4);
    let answered = std::cell::Cell::new(0u32);
    let mut runner = TestRunner::new(Config {
        // PROPTEST_CASES raises the count for a longer local run.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(CASES),
        // Failures print their shrunk input; no regression files in the source tree.
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &prop_oneof![3 => request(), 1 => plausible_request()],
            |request| {
                let now = SystemTime::now();
                let result = runtime.block_on(async {
                    tokio::time::timeout(
                        Duration::from_secs(10),
                        query_metrics(&reader, request.clone(), now),
                    )
                    .await
                });
                let result = result
                    .map_err(|_| TestCaseError::fail(format!("no answer in 10s: {request:?}")))?;
                match result {
                    Ok(_) => answered.set(answered.get() + 1),
                    Err(KpiError::InvalidArgument { field, reason }) => {
                        let top = field.split(['[', '.']).next().unwrap();
                        prop_assert!(
                            FIELDS.contains(&top),
                            "refusal names {:?}, not a request field",
                            field
                        );
                        prop_assert!(!reason.trim().is_empty(), "refusal without a reason");
                    }
                    Err(other) => {
                        prop_assert!(false, "an empty store gave {:?} for {:?}", other, request)
                    }
                }
                Ok(())
            },
        )
        .unwrap();
    // Not vacuous: some requests were valid and answered.
    assert!(answered.get() > 0, "no request was answered");
}

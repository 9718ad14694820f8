//! Roll-ups across granularities: which stored granularity a query reads, that the result does
//! not depend on it, and the refusal of reads that are too large.

use iee_api::kpi::Point;

use super::*;
use crate::fields::stat;

/// The points of the only series of a response.
fn points(response: QueryMetricsResponse) -> Vec<Point> {
    assert_eq!(response.series.len(), 1, "{:?}", response.series);
    response.series.into_iter().flat_map(|s| s.points).collect()
}

#[tokio::test]
async fn hourly_series_agree_over_minute_and_hour_aligned_ranges() {
    let store = store();
    let mut data = Data::default();
    // Six hours (360 minute buckets, more than one read chunk), answers on hour boundaries and
    // in the last minute of hours.
    let answers = [
        (0, 3.0, 1.0),
        (59, 2.0, 2.0),
        (60, 5.0, 1.0),
        (179, 4.0, 4.0),
        (300, 1.0, 0.0),
        (359, 6.0, 3.0),
    ];
    for (minute, n, k) in answers {
        data.add(DAY0 + minute * MIN, stat::CSAT_N, &web(""), n)
            .add(DAY0 + minute * MIN, stat::CSAT_SATISFIED, &web(""), k);
    }
    commit(&store, 0, &data).await;
    let reader = reader(&store);

    let mut hour_aligned = request(&["csat"], DAY0, DAY0 + 6 * HOUR);
    hour_aligned.bucket_width = minutes(60);
    let mut minute_aligned = request(&["csat"], DAY0 - 7 * MIN, DAY0 + 6 * HOUR + 3 * MIN);
    minute_aligned.bucket_width = minutes(60);
    let by_hour = points(query(&reader, hour_aligned).await);
    let by_minute = points(query(&reader, minute_aligned).await);
    assert_eq!(by_hour, by_minute);
    let summary: Vec<(i64, f64, u64)> = by_hour
        .iter()
        .map(|p| (p.start_time.unwrap().seconds, p.value, p.count))
        .collect();
    assert_eq!(
        summary,
        [
            (DAY0, 0.6, 5),
            (DAY0 + HOUR, 0.2, 5),
            (DAY0 + 2 * HOUR, 1.0, 4),
            (DAY0 + 5 * HOUR, 3.0 / 7.0, 7),
        ]
    );
}

#[tokio::test]
async fn granularity_is_the_coarsest_that_tiles_range_and_buckets() {
    let store = store();
    let mut data = Data::default();
    // Different values per granularity reveal which one a query read.
    let at = DAY0 + 30 * MIN;
    data.add_in(Granularity::Minute, at, stat::EVENTS, &web(""), 1.0)
        .add_in(Granularity::Hour, at, stat::EVENTS, &web(""), 10.0)
        .add_in(Granularity::Day, at, stat::EVENTS, &web(""), 100.0);
    commit(&store, 0, &data).await;
    let reader = reader(&store);
    let read = |start: i64, end: i64, width: i64| {
        let mut r = request(&["events"], start, end);
        r.bucket_width = minutes(width);
        let reader = reader.clone();
        async move { points(query(&reader, r).await)[0].value }
    };
    assert_eq!(read(DAY0, DAY0 + DAY, 0).await, 100.0);
    assert_eq!(read(DAY0, DAY0 + 2 * DAY, 1440).await, 100.0);
    assert_eq!(read(DAY0, DAY0 + HOUR, 0).await, 10.0);
    assert_eq!(read(DAY0, DAY0 + DAY, 60).await, 10.0);
    assert_eq!(read(DAY0, DAY0 + DAY, 90).await, 1.0);
    assert_eq!(read(DAY0 + 30 * MIN, DAY0 + 2 * HOUR, 0).await, 1.0);
    // A start within a minute is rounded down to it.
    let mut r = request(&["events"], 0, DAY0 + HOUR);
    r.start_time = Some(Timestamp {
        seconds: DAY0 + 30 * MIN + 20,
        nanos: 5,
    });
    assert_eq!(points(query(&reader, r).await)[0].value, 1.0);
}

#[tokio::test]
async fn reads_beyond_the_store_bucket_limit_are_refused_with_a_fix() {
    let reader = reader(&store());
    let refusal = |r: QueryMetricsRequest, reader: Reader| async move {
        match query_metrics(&reader, r, now()).await {
            Err(KpiError::InvalidArgument { field, reason }) => (field, reason),
            other => panic!("{other:?}"),
        }
    };
    // 15 days of minutes (21 600 buckets).
    let (field, reason) = refusal(
        request(&["events"], DAY0 + MIN, DAY0 + 15 * DAY),
        reader.clone(),
    )
    .await;
    assert_eq!(field, "start_time");
    assert!(
        reason.contains("21599 minute buckets") && reason.contains("whole hours"),
        "{reason}"
    );
    let (field, _) = refusal(
        request(&["events"], DAY0, DAY0 + 15 * DAY + MIN),
        reader.clone(),
    )
    .await;
    assert_eq!(field, "end_time");
    let mut r = request(&["events"], DAY0, DAY0 + 15 * DAY);
    r.bucket_width = minutes(90);
    let (field, reason) = refusal(r, reader.clone()).await;
    assert_eq!(field, "bucket_width");
    assert!(reason.contains("whole hours"), "{reason}");

    let mut small = reader.clone();
    small.max_store_buckets = 5;
    let (field, reason) = refusal(request(&["events"], DAY0, DAY0 + 6 * HOUR), small.clone()).await;
    assert_eq!(field, "end_time");
    assert!(
        reason.contains("6 hour buckets") && reason.contains("whole day"),
        "{reason}"
    );
    let (field, reason) = refusal(request(&["events"], DAY0, DAY0 + 6 * DAY), small.clone()).await;
    assert_eq!(field, "start_time");
    assert!(reason.contains("shorten the range"), "{reason}");
    // At the limit the read goes through.
    let ok = query_metrics(&small, request(&["events"], DAY0, DAY0 + 5 * HOUR), now()).await;
    assert_eq!(ok.map(|r| r.series.len()), Ok(0));
}

#[tokio::test]
async fn cohort_metrics_use_whole_day_buckets() {
    let store = store();
    let mut data = Data::default();
    data.add(DAY0 + HOUR, stat::COHORT, &web(""), 8.0)
        .add(DAY0 + HOUR, &crate::fields::retained(1), &web(""), 2.0)
        .add(DAY0 + DAY, stat::COHORT, &web(""), 4.0)
        .add(DAY0 + DAY, &crate::fields::retained(1), &web(""), 3.0);
    commit(&store, 0, &data).await;
    let reader = reader(&store);

    let mut r = request(&["retention_week_1"], DAY0, DAY0 + 2 * DAY);
    r.bucket_width = minutes(60);
    let err = query_metrics(&reader, r.clone(), now()).await.unwrap_err();
    assert!(
        matches!(&err, KpiError::InvalidArgument { field, reason }
            if field == "bucket_width" && reason.contains("retention_week_1")),
        "{err:?}"
    );
    r.bucket_width = minutes(1440);
    let values: Vec<(f64, u64)> = points(query(&reader, r).await)
        .iter()
        .map(|p| (p.value, p.count))
        .collect();
    assert_eq!(values, [(0.25, 8), (0.75, 4)]);
}

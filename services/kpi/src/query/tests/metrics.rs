//! Values of each formula, grouping, filtering, omission of empty data and the choice between
//! overall and per-arm rows.

use iee_api::kpi::Dimension;

use super::*;
use crate::fields::stat;

#[tokio::test]
async fn proportion_matches_a_hand_computed_wilson_interval() {
    let store = store();
    // 8 satisfied of 10 answers, spread over both partitions and two hours.
    let mut a = Data::default();
    a.add(DAY0 + 5 * MIN, stat::CSAT_N, &web(""), 6.0).add(
        DAY0 + 5 * MIN,
        stat::CSAT_SATISFIED,
        &web(""),
        5.0,
    );
    let mut b = Data::default();
    b.add(DAY0 + 9 * HOUR, stat::CSAT_N, &app(""), 4.0).add(
        DAY0 + 9 * HOUR,
        stat::CSAT_SATISFIED,
        &app(""),
        3.0,
    );
    commit(&store, 0, &a).await;
    commit(&store, 1, &b).await;

    let response = query(&reader(&store), request(&["csat"], DAY0, DAY0 + DAY)).await;
    assert_eq!(response.series.len(), 1);
    let series = &response.series[0];
    assert_eq!(
        (series.metric.as_str(), series.unit.as_str()),
        ("csat", "1")
    );
    assert!(series.group.is_empty());
    assert_eq!(series.points.len(), 1);
    let point = &series.points[0];
    assert_eq!(point.start_time, Some(at(DAY0)));
    assert_eq!(point.count, 10);
    close(point.value, 0.8, 1e-12);
    let (n, p, z2) = (10.0, 0.8, Z95 * Z95);
    let center = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    let interval = point.interval.unwrap();
    close(interval.lower, center - half, 1e-9);
    close(interval.upper, center + half, 1e-9);
    // The published reference for 8/10.
    close(interval.lower, 0.4902, 1e-4);
    close(interval.upper, 0.9433, 1e-4);
    assert_eq!(interval.level, 0.95);
}

#[tokio::test]
async fn confidence_level_is_applied_to_the_intervals() {
    let store = store();
    let mut data = Data::default();
    data.add(DAY0, stat::CSAT_N, &web(""), 50.0)
        .add(DAY0, stat::CSAT_SATISFIED, &web(""), 20.0);
    commit(&store, 0, &data).await;
    let reader = reader(&store);
    let width = |level: f64| {
        let mut r = request(&["csat"], DAY0, DAY0 + DAY);
        r.confidence_level = level;
        let reader = reader.clone();
        async move {
            let i = query(&reader, r).await.series[0].points[0]
                .interval
                .unwrap();
            (i.level, i.upper - i.lower)
        }
    };
    let (default_level, default_width) = width(0.0).await;
    let (level, narrower) = width(0.8).await;
    assert_eq!((default_level, level), (0.95, 0.8));
    assert!(narrower < default_width, "{narrower} vs {default_width}");
}

#[tokio::test]
async fn nps_is_on_the_hundred_point_scale() {
    let store = store();
    let mut data = Data::default();
    data.add(DAY0, stat::NPS_PROMOTERS, &web(""), 3.0)
        .add(DAY0, stat::NPS_PASSIVES, &web(""), 1.0)
        .add(DAY0, stat::NPS_DETRACTORS, &web(""), 2.0);
    commit(&store, 0, &data).await;

    let response = query(&reader(&store), request(&["nps"], DAY0, DAY0 + HOUR)).await;
    let point = &response.series[0].points[0];
    assert_eq!(response.series[0].unit, "score");
    close(point.value, 16.67, 0.005);
    assert_eq!(point.count, 6);
    let (p, d): (f64, f64) = (0.5, 2.0 / 6.0);
    let se = 100.0 * ((p + d - (p - d) * (p - d)) / 6.0).sqrt();
    let interval = point.interval.unwrap();
    close(interval.lower, 100.0 / 6.0 - Z95 * se, 1e-9);
    close(interval.upper, 100.0 / 6.0 + Z95 * se, 1e-9);
}

#[tokio::test]
async fn ces_mean_has_a_t_interval_from_two_answers_on() {
    let store = store();
    let mut data = Data::default();
    // Answers 1..=5 on the web, a single 6 in the app.
    data.add(DAY0, stat::CES_N, &web(""), 5.0)
        .add(DAY0, stat::CES_SUM, &web(""), 15.0)
        .add(DAY0, stat::CES_SUMSQ, &web(""), 55.0)
        .add(DAY0, stat::CES_N, &app(""), 1.0)
        .add(DAY0, stat::CES_SUM, &app(""), 6.0)
        .add(DAY0, stat::CES_SUMSQ, &app(""), 36.0);
    commit(&store, 1, &data).await;

    let mut r = request(&["ces"], DAY0, DAY0 + DAY);
    r.group_by = vec![Dimension::Channel as i32];
    let response = query(&reader(&store), r).await;
    let [app_series, web_series] = &response.series[..] else {
        panic!("{:?}", response.series);
    };
    assert_eq!(group(app_series), ["CHANNEL_APP"]);
    let single = &app_series.points[0];
    assert_eq!(
        (single.value, single.count, single.interval),
        (6.0, 1, None)
    );
    assert_eq!(group(web_series), ["CHANNEL_WEB"]);
    let point = &web_series.points[0];
    assert_eq!((point.value, point.count), (3.0, 5));
    // t(0.975, 4) = 2.776445105; s² = 2.5.
    let half = 2.776_445_105_197_793 * (2.5_f64 / 5.0).sqrt();
    let interval = point.interval.unwrap();
    close(interval.lower, 3.0 - half, 1e-6);
    close(interval.upper, 3.0 + half, 1e-6);
}

#[tokio::test]
async fn counts_and_ratios_have_no_interval() {
    let store = store();
    let mut a = Data::default();
    a.add(DAY0, stat::DECISIONS, &web("offer"), 4.0)
        .add(DAY0, stat::ACTIONS, &web("offer"), 6.0);
    let mut b = Data::default();
    b.add(DAY0 + HOUR, stat::DECISIONS, &app("offer"), 3.0).add(
        DAY0 + HOUR,
        stat::ACTIVE_CUSTOMERS,
        &app(""),
        4.0,
    );
    commit(&store, 0, &a).await;
    commit(&store, 1, &b).await;

    let response = query(
        &reader(&store),
        request(&["decisions", "contact_rate"], DAY0, DAY0 + DAY),
    )
    .await;
    let [decisions, contact] = &response.series[..] else {
        panic!("{:?}", response.series);
    };
    assert_eq!(
        (decisions.metric.as_str(), decisions.unit.as_str()),
        ("decisions", "count")
    );
    let point = &decisions.points[0];
    assert_eq!((point.value, point.count, point.interval), (7.0, 7, None));
    assert_eq!(contact.metric, "contact_rate");
    let point = &contact.points[0];
    assert_eq!((point.value, point.count, point.interval), (1.5, 4, None));
}

#[tokio::test]
async fn buckets_and_groups_without_observations_are_omitted() {
    let store = store();
    let mut data = Data::default();
    data.add(DAY0 + 10 * MIN, stat::CSAT_N, &web(""), 2.0)
        .add(DAY0 + 10 * MIN, stat::CSAT_SATISFIED, &web(""), 1.0)
        .add(DAY0 + HOUR, stat::EVENTS, &app(""), 3.0)
        .add(DAY0 + 2 * HOUR + 59 * MIN, stat::CSAT_N, &web(""), 4.0);
    commit(&store, 0, &data).await;

    let mut r = request(&["csat", "events", "ces"], DAY0, DAY0 + 3 * HOUR);
    r.bucket_width = minutes(60);
    r.group_by = vec![Dimension::Channel as i32];
    let response = query(&reader(&store), r).await;
    let summary: Vec<(&str, Vec<&str>, Vec<i64>)> = response
        .series
        .iter()
        .map(|s| {
            let starts = s.points.iter().map(|p| p.start_time.unwrap().seconds);
            (s.metric.as_str(), group(s), starts.collect())
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("csat", vec!["CHANNEL_WEB"], vec![DAY0, DAY0 + 2 * HOUR]),
            ("events", vec!["CHANNEL_APP"], vec![DAY0 + HOUR]),
        ]
    );
    let values: Vec<f64> = response.series[0].points.iter().map(|p| p.value).collect();
    assert_eq!(values, [0.5, 0.0]);
}

#[tokio::test]
async fn groups_by_channel_within_an_action_filter() {
    let store = store();
    let mut data = Data::default();
    for (dims, decisions, converted) in [
        (web("offer-a"), 10.0, 3.0),
        (app("offer-a"), 5.0, 1.0),
        (web("offer-b"), 8.0, 8.0),
        (web(""), 4.0, 0.0),
    ] {
        data.add(DAY0, stat::DECISIONS, &dims, decisions).add(
            DAY0,
            stat::CONVERTED,
            &dims,
            converted,
        );
    }
    commit(&store, 0, &data).await;
    let reader = reader(&store);

    let mut r = request(&["conversion_rate"], DAY0, DAY0 + DAY);
    r.group_by = vec![Dimension::Channel as i32];
    r.filters = vec![filter(Dimension::Action, &["offer-a"])];
    let response = query(&reader, r.clone()).await;
    let rows: Vec<(Vec<&str>, f64, u64)> = response
        .series
        .iter()
        .map(|s| (group(s), s.points[0].value, s.points[0].count))
        .collect();
    assert_eq!(
        rows,
        [
            (vec!["CHANNEL_APP"], 0.2, 5),
            (vec!["CHANNEL_WEB"], 0.3, 10)
        ]
    );
    assert_eq!(
        response.series[0].group[0].dimension,
        Dimension::Channel as i32
    );

    // Decisions without an action are filtered by the value "none".
    r.filters = vec![filter(Dimension::Action, &["none", "offer-b"])];
    r.group_by = vec![Dimension::Action as i32];
    let response = query(&reader, r).await;
    let rows: Vec<(Vec<&str>, f64)> = response
        .series
        .iter()
        .map(|s| (group(s), s.points[0].value))
        .collect();
    assert_eq!(rows, [(vec!["none"], 0.0), (vec!["offer-b"], 1.0)]);
}

#[tokio::test]
async fn arm_rows_are_read_only_with_the_arm_dimension() {
    let store = store();
    let mut data = Data::default();
    data.add(DAY0, stat::DECISIONS, &web(""), 10.0)
        .add(
            DAY0,
            stat::DECISIONS,
            &web("").with_arm("exp", "control"),
            6.0,
        )
        .add(
            DAY0,
            stat::DECISIONS,
            &web("").with_arm("exp", "treatment"),
            4.0,
        );
    commit(&store, 0, &data).await;
    let reader = reader(&store);
    let value = |response: &QueryMetricsResponse| -> Vec<(Vec<String>, f64)> {
        let series = response.series.iter();
        series
            .map(|s| {
                (
                    group(s).iter().map(|g| (*g).to_owned()).collect(),
                    s.points[0].value,
                )
            })
            .collect()
    };

    let overall = query(&reader, request(&["decisions"], DAY0, DAY0 + DAY)).await;
    assert_eq!(value(&overall), [(vec![], 10.0)]);

    let mut r = request(&["decisions"], DAY0, DAY0 + DAY);
    r.group_by = vec![Dimension::ExperimentArm as i32];
    let by_arm = query(&reader, r).await;
    assert_eq!(
        value(&by_arm),
        [
            (vec!["exp/control".to_owned()], 6.0),
            (vec!["exp/treatment".to_owned()], 4.0)
        ]
    );

    let mut r = request(&["decisions"], DAY0, DAY0 + DAY);
    r.filters = vec![filter(Dimension::ExperimentArm, &["exp/treatment"])];
    let filtered = query(&reader, r).await;
    assert_eq!(value(&filtered), [(vec![], 4.0)]);
}

#[tokio::test]
async fn experiment_metrics_need_the_arm_dimension() {
    let store = store();
    let mut data = Data::default();
    data.add(
        DAY0,
        stat::ASSIGNED,
        &web("").with_arm("exp", "control"),
        7.0,
    );
    commit(&store, 0, &data).await;
    let reader = reader(&store);

    let err = query_metrics(&reader, request(&["customers"], DAY0, DAY0 + DAY), now())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, KpiError::InvalidArgument { field, reason }
            if field == "group_by" && reason.contains("DIMENSION_EXPERIMENT_ARM")),
        "{err:?}"
    );
    let mut r = request(&["customers"], DAY0, DAY0 + DAY);
    r.filters = vec![filter(Dimension::ExperimentArm, &["exp/control"])];
    let response = query(&reader, r).await;
    assert_eq!(response.series[0].points[0].value, 7.0);
}

#[tokio::test]
async fn end_time_defaults_to_now() {
    let store = store();
    let now = DAY0 + 10 * DAY;
    let mut data = Data::default();
    data.add(now - 30 * MIN, stat::EVENTS, &web(""), 2.0).add(
        now + HOUR,
        stat::EVENTS,
        &web(""),
        5.0,
    );
    commit(&store, 0, &data).await;

    let mut r = request(&["events"], now - DAY, 0);
    r.end_time = None;
    let response = query(&reader(&store), r).await;
    assert_eq!(response.series[0].points[0].value, 2.0);
}

//! Every refusal of a malformed request names the offending field and says why.

use iee_api::kpi::{GetExperimentRequest, ListMetricsRequest};

use super::*;
use crate::query::{get_experiment, list_metrics};

/// A change to a valid request, the field its refusal must name and a fragment of the reason.
type Case = (fn(&mut QueryMetricsRequest), &'static str, &'static str);

#[tokio::test]
async fn every_invalid_query_names_its_field() {
    let cases: Vec<Case> = vec![
        (|r| r.tenant_id.clear(), "tenant_id", "required"),
        (|r| r.metrics.clear(), "metrics", "at least one"),
        (
            |r| r.metrics = vec!["events".into(); 21],
            "metrics",
            "at most 20",
        ),
        (|r| r.metrics.push("nsp".into()), "metrics[1]", "\"nsp\""),
        (|r| r.metrics.push("events".into()), "metrics[1]", "twice"),
        (|r| r.start_time = None, "start_time", "required"),
        (
            |r| r.end_time = Some(at(DAY0)),
            "end_time",
            "after start_time",
        ),
        (
            |r| r.end_time = Some(at(DAY0 - HOUR)),
            "end_time",
            "after start_time",
        ),
        (
            |r| {
                r.start_time = Some(Timestamp {
                    seconds: DAY0,
                    nanos: -1,
                })
            },
            "start_time",
            "nanos",
        ),
        (|r| r.end_time = Some(at(i64::MAX)), "end_time", "9999"),
        (
            |r| {
                r.bucket_width = Some(prost_types::Duration {
                    seconds: 90,
                    nanos: 0,
                })
            },
            "bucket_width",
            "whole number of minutes",
        ),
        (
            |r| {
                r.bucket_width = Some(prost_types::Duration {
                    seconds: 60,
                    nanos: 1,
                })
            },
            "bucket_width",
            "whole number of minutes",
        ),
        (|r| r.bucket_width = minutes(-5), "bucket_width", "positive"),
        (
            |r| {
                r.end_time = Some(at(DAY0 + 8 * DAY));
                r.bucket_width = minutes(1);
            },
            "bucket_width",
            "at most 10000",
        ),
        (|r| r.group_by = vec![1, 2, 3, 4], "group_by", "at most 3"),
        (|r| r.group_by = vec![1, 0], "group_by[1]", "must be set"),
        (
            |r| r.group_by = vec![9],
            "group_by[0]",
            "unknown dimension 9",
        ),
        (
            |r| r.group_by = vec![3, 3],
            "group_by[1]",
            "DIMENSION_JOURNEY_STAGE is listed twice",
        ),
        (
            |r| {
                r.metrics = vec!["retention_week_2".into()];
                r.group_by = vec![Dimension::Action as i32];
            },
            "group_by[0]",
            "retention_week_2 cannot be split",
        ),
        (
            |r| r.filters = vec![filter(Dimension::Unspecified, &["x"])],
            "filters[0].dimension",
            "must be set",
        ),
        (
            |r| {
                r.filters = vec![
                    filter(Dimension::Channel, &["CHANNEL_WEB"]),
                    filter(Dimension::Action, &[]),
                ];
            },
            "filters[1].values",
            "at least one value",
        ),
        (
            |r| r.confidence_level = 1.5,
            "confidence_level",
            "strictly between 0 and 1",
        ),
        (
            |r| r.confidence_level = -0.1,
            "confidence_level",
            "strictly between 0 and 1",
        ),
        (
            |r| r.metrics = vec!["revenue_per_customer".into()],
            "group_by",
            "per experiment arm",
        ),
    ];
    let reader = reader(&store());
    let base = request(&["events"], DAY0, DAY0 + DAY);
    assert!(query_metrics(&reader, base.clone(), now()).await.is_ok());
    for (i, (change, expected_field, fragment)) in cases.into_iter().enumerate() {
        let mut r = base.clone();
        change(&mut r);
        match query_metrics(&reader, r, now()).await {
            Err(KpiError::InvalidArgument { field, reason }) => {
                assert_eq!(field, expected_field, "case {i}: {reason}");
                assert!(
                    reason.contains(fragment),
                    "case {i}: {reason:?} lacks {fragment:?}"
                );
            }
            other => panic!("case {i} ({expected_field}): {other:?}"),
        }
    }
}

#[tokio::test]
async fn invalid_experiment_and_catalogue_requests_name_their_field() {
    let reader = reader(&store());
    let valid = GetExperimentRequest {
        tenant_id: TENANT.into(),
        experiment_id: "exp".into(),
        ..GetExperimentRequest::default()
    };
    let cases: Vec<(GetExperimentRequest, &str)> = vec![
        (
            GetExperimentRequest {
                tenant_id: String::new(),
                ..valid.clone()
            },
            "tenant_id",
        ),
        (
            GetExperimentRequest {
                experiment_id: String::new(),
                ..valid.clone()
            },
            "experiment_id",
        ),
        (
            GetExperimentRequest {
                metrics: vec!["csat".into(), "cvr".into()],
                ..valid.clone()
            },
            "metrics[1]",
        ),
        (
            GetExperimentRequest {
                confidence_level: 2.0,
                ..valid.clone()
            },
            "confidence_level",
        ),
        (
            GetExperimentRequest {
                start_time: Some(Timestamp {
                    seconds: 0,
                    nanos: 2_000_000_000,
                }),
                ..valid.clone()
            },
            "start_time",
        ),
    ];
    for (request, expected) in cases {
        let err = get_experiment(&reader, request, now()).await.unwrap_err();
        assert!(
            matches!(&err, KpiError::InvalidArgument { field, .. } if field == expected),
            "{expected}: {err:?}"
        );
    }
    let err = list_metrics(ListMetricsRequest::default()).unwrap_err();
    assert!(matches!(&err, KpiError::InvalidArgument { field, .. } if field == "tenant_id"));
}

#[test]
fn list_metrics_returns_the_catalogue() {
    let response = list_metrics(ListMetricsRequest {
        tenant_id: TENANT.into(),
    })
    .unwrap();
    let names: Vec<&str> = response.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names.len(), crate::catalogue::metrics().len());
    assert_eq!(names.first(), Some(&"nps"));
    assert!(names.contains(&"retention_week_12") && names.contains(&"revenue_per_customer"));
    let nps = &response.metrics[0];
    assert_eq!(nps.unit, "score");
    assert!(nps.dimensions.contains(&(Dimension::ExperimentArm as i32)));
}

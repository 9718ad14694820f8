//! The validation table: every rule with accepted and rejected cases, all in one mixed batch,
//! checked for status, field path and code, and against what the log and dead letters hold.

use std::{collections::HashSet, time::SystemTime};

use iee_api::{
    ingest::{EventStatus, IngestRequest, ListRejectedRequest, TouchpointApi},
    pb::common::{
        Channel, Event, Money, PropertyValue, RejectionCode, SurveyAnswer, SurveyKind,
        property_value::Kind,
    },
};
use iee_tests::{Backend, TestCluster, valid_event};

struct Case {
    name: &'static str,
    mutate: fn(&mut Event),
    /// `None`: accepted. `Some((field, code))`: rejected with that field path and code.
    expect: Option<(&'static str, RejectionCode)>,
}

fn at_offset(secs: i64) -> Option<prost_types::Timestamp> {
    let now = prost_types::Timestamp::from(SystemTime::now());
    Some(prost_types::Timestamp {
        seconds: now.seconds + secs,
        nanos: 0,
    })
}

fn prop(kind: Kind) -> PropertyValue {
    PropertyValue { kind: Some(kind) }
}

fn survey(kind: SurveyKind, score: i32) -> Option<SurveyAnswer> {
    Some(SurveyAnswer {
        kind: kind as i32,
        score,
        survey_id: "q1".into(),
    })
}

fn eur(amount_minor: i64, currency: &str) -> Option<Money> {
    Some(Money {
        amount_minor,
        currency: currency.into(),
    })
}

use RejectionCode::*;

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    vec![
        Case { name: "minimal valid", mutate: |_| {}, expect: None },
        Case { name: "anonymous visitor", mutate: |e| { e.customer_id.clear(); e.anonymous_id = "v-1".into(); }, expect: None },
        Case { name: "custom type", mutate: |e| e.r#type = "custom.loyalty.points_redeemed".into(), expect: None },
        Case { name: "journey stage", mutate: |e| e.journey_stage = 3, expect: None },
        Case { name: "nps 0", mutate: |e| { e.r#type = "survey_response".into(); e.survey = survey(SurveyKind::Nps, 0); }, expect: None },
        Case { name: "nps 10", mutate: |e| e.survey = survey(SurveyKind::Nps, 10), expect: None },
        Case { name: "csat 1", mutate: |e| e.survey = survey(SurveyKind::Csat, 1), expect: None },
        Case { name: "csat 5", mutate: |e| e.survey = survey(SurveyKind::Csat, 5), expect: None },
        Case { name: "ces 7", mutate: |e| e.survey = survey(SurveyKind::Ces, 7), expect: None },
        Case { name: "refund", mutate: |e| { e.r#type = "refund".into(); e.value = eur(-500, "JPY"); }, expect: None },
        Case { name: "within clock skew", mutate: |e| e.occurred_at = at_offset(60), expect: None },
        Case { name: "64 properties", mutate: |e| { for i in 0..64 { e.properties.insert(format!("k{i}"), prop(Kind::BoolValue(true))); } }, expect: None },
        Case { name: "text at limit", mutate: |e| e.text = Some("a".repeat(4096)), expect: None },
        Case { name: "sequence", mutate: |e| e.sequence = Some(7), expect: None },

        Case { name: "whole event too large", mutate: |e| { for i in 0..40 { e.properties.insert(format!("k{i}"), prop(Kind::StringValue("x".repeat(1000)))); } }, expect: Some(("", TooLarge)) },
        Case { name: "no event id", mutate: |e| e.event_id.clear(), expect: Some(("event_id", MissingField)) },
        Case { name: "event id with space", mutate: |e| e.event_id = "a b".into(), expect: Some(("event_id", InvalidValue)) },
        Case { name: "event id too long", mutate: |e| e.event_id = "x".repeat(129), expect: Some(("event_id", TooLarge)) },
        Case { name: "no tenant", mutate: |e| e.tenant_id.clear(), expect: Some(("tenant_id", MissingField)) },
        Case { name: "upper-case tenant", mutate: |e| e.tenant_id = "Acme".into(), expect: Some(("tenant_id", InvalidValue)) },
        Case { name: "no customer", mutate: |e| e.customer_id.clear(), expect: Some(("customer_id", MissingField)) },
        Case { name: "control char in customer", mutate: |e| e.customer_id = "c\n1".into(), expect: Some(("customer_id", InvalidValue)) },
        Case { name: "no type", mutate: |e| e.r#type.clear(), expect: Some(("type", MissingField)) },
        Case { name: "unknown type", mutate: |e| e.r#type = "pageview".into(), expect: Some(("type", InvalidValue)) },
        Case { name: "empty custom type", mutate: |e| e.r#type = "custom.".into(), expect: Some(("type", InvalidValue)) },
        Case { name: "upper-case custom type", mutate: |e| e.r#type = "custom.Points".into(), expect: Some(("type", InvalidValue)) },
        Case { name: "no channel", mutate: |e| e.channel = 0, expect: Some(("channel", MissingField)) },
        Case { name: "unknown channel", mutate: |e| e.channel = 99, expect: Some(("channel", UnknownEnum)) },
        Case { name: "unknown journey stage", mutate: |e| e.journey_stage = 42, expect: Some(("journey_stage", UnknownEnum)) },
        Case { name: "no occurred_at", mutate: |e| e.occurred_at = None, expect: Some(("occurred_at", MissingField)) },
        Case { name: "far future", mutate: |e| e.occurred_at = at_offset(3600), expect: Some(("occurred_at", FutureTimestamp)) },
        Case { name: "year 292 billion", mutate: |e| e.occurred_at = Some(prost_types::Timestamp { seconds: i64::MAX, nanos: 0 }), expect: Some(("occurred_at", FutureTimestamp)) },
        Case { name: "before 1970", mutate: |e| e.occurred_at = Some(prost_types::Timestamp { seconds: -1, nanos: 0 }), expect: Some(("occurred_at", OutOfRange)) },
        Case { name: "65 properties", mutate: |e| { for i in 0..65 { e.properties.insert(format!("k{i}"), prop(Kind::BoolValue(true))); } }, expect: Some(("properties", TooLarge)) },
        Case { name: "empty property key", mutate: |e| { e.properties.insert(String::new(), prop(Kind::BoolValue(true))); }, expect: Some(("properties[\"\"]", InvalidValue)) },
        Case { name: "property without value", mutate: |e| { e.properties.insert("k".into(), PropertyValue { kind: None }); }, expect: Some(("properties[\"k\"]", MissingField)) },
        Case { name: "long property string", mutate: |e| { e.properties.insert("k".into(), prop(Kind::StringValue("x".repeat(1025)))); }, expect: Some(("properties[\"k\"]", TooLarge)) },
        Case { name: "NaN property", mutate: |e| { e.properties.insert("k".into(), prop(Kind::NumberValue(f64::NAN))); }, expect: Some(("properties[\"k\"]", OutOfRange)) },
        Case { name: "lower-case currency", mutate: |e| e.value = eur(100, "eur"), expect: Some(("value.currency", InvalidValue)) },
        Case { name: "unknown currency", mutate: |e| e.value = eur(100, "XYZ"), expect: Some(("value.currency", InvalidValue)) },
        Case { name: "no currency", mutate: |e| e.value = eur(100, ""), expect: Some(("value.currency", MissingField)) },
        Case { name: "text too long", mutate: |e| e.text = Some("a".repeat(4097)), expect: Some(("text", TooLarge)) },
        Case { name: "nps 11", mutate: |e| e.survey = survey(SurveyKind::Nps, 11), expect: Some(("survey.score", OutOfRange)) },
        Case { name: "nps -1", mutate: |e| e.survey = survey(SurveyKind::Nps, -1), expect: Some(("survey.score", OutOfRange)) },
        Case { name: "csat 0", mutate: |e| e.survey = survey(SurveyKind::Csat, 0), expect: Some(("survey.score", OutOfRange)) },
        Case { name: "csat 6", mutate: |e| e.survey = survey(SurveyKind::Csat, 6), expect: Some(("survey.score", OutOfRange)) },
        Case { name: "ces 8", mutate: |e| e.survey = survey(SurveyKind::Ces, 8), expect: Some(("survey.score", OutOfRange)) },
        Case { name: "survey without kind", mutate: |e| e.survey = survey(SurveyKind::Unspecified, 3), expect: Some(("survey.kind", MissingField)) },
        Case { name: "unknown survey kind", mutate: |e| e.survey = Some(SurveyAnswer { kind: 9, score: 3, survey_id: String::new() }), expect: Some(("survey.kind", UnknownEnum)) },
        Case { name: "survey_response without survey", mutate: |e| e.r#type = "survey_response".into(), expect: Some(("survey", MissingField)) },
    ]
}

async fn every_rule_accepts_and_rejects_with_the_field_path(backend: Backend) {
    let cluster = TestCluster::start(backend).await;
    let client = cluster.client().await;
    let cases = cases();
    let events: Vec<Event> = cases
        .iter()
        .enumerate()
        .map(|(i, case)| {
            let mut event = valid_event(&format!("v-{i}"));
            event.channel = Channel::App as i32;
            (case.mutate)(&mut event);
            event
        })
        .collect();

    let response = client
        .ingest(IngestRequest { events })
        .await
        .expect("a mixed batch is answered per event");
    assert_eq!(response.results.len(), cases.len());

    let mut accepted_ids = HashSet::new();
    for (i, (case, result)) in cases.iter().zip(&response.results).enumerate() {
        assert_eq!(result.index as usize, i, "{}", case.name);
        match case.expect {
            None => {
                assert_eq!(
                    result.status,
                    EventStatus::Accepted as i32,
                    "{}: {result:?}",
                    case.name
                );
                assert!(!result.offset.is_empty(), "{}", case.name);
                assert!(result.rejection.is_none(), "{}", case.name);
                accepted_ids.insert(result.event_id.clone());
            }
            Some((field, code)) => {
                assert_eq!(
                    result.status,
                    EventStatus::Rejected as i32,
                    "{}: {result:?}",
                    case.name
                );
                let rejection = result.rejection.as_ref().expect("rejected events say why");
                let expected_field = if field.is_empty() {
                    format!("events[{i}]")
                } else {
                    format!("events[{i}].{field}")
                };
                assert_eq!(rejection.field, expected_field, "{}", case.name);
                assert_eq!(
                    rejection.code, code as i32,
                    "{}: {}",
                    case.name, rejection.reason
                );
                assert!(!rejection.reason.is_empty(), "{}", case.name);
                assert!(result.offset.is_empty(), "{}", case.name);
            }
        }
    }
    let expected_accepted = cases.iter().filter(|c| c.expect.is_none()).count();
    assert_eq!(response.accepted as usize, expected_accepted);
    assert_eq!(response.rejected as usize, cases.len() - expected_accepted);

    // The log holds exactly the accepted events: the bad ones did not stop the good ones, and
    // nothing rejected slipped in.
    let logged: HashSet<String> = cluster
        .log_records()
        .await
        .into_iter()
        .map(|(_, _, record)| record.event.expect("records hold events").event_id)
        .collect();
    assert_eq!(logged, accepted_ids);

    // Every rejected event is kept with its reason: acme's own, and the ones whose tenant was
    // bad under `_invalid`.
    let mut kept = 0;
    for tenant in ["acme", iee_ingest::INVALID_TENANT_BUCKET] {
        let page = client
            .list_rejected(ListRejectedRequest {
                tenant_id: tenant.into(),
                page_size: 1000,
                page_token: String::new(),
            })
            .await
            .expect("dead letters are listed");
        for letter in &page.rejected {
            let rejection = letter
                .rejection
                .as_ref()
                .expect("dead letters keep the reason");
            assert!(rejection.field.starts_with("events["), "{rejection:?}");
            assert!(letter.event.is_some());
        }
        kept += page.rejected.len();
    }
    assert_eq!(kept, cases.len() - expected_accepted);
}

async fn oversized_batch_is_refused_as_a_whole(backend: Backend) {
    let config = iee_ingest::IngestConfig {
        max_batch_events: 10,
        ..Default::default()
    };
    let cluster = TestCluster::start_with(backend, config).await;
    let mut grpc = cluster.grpc().await;
    let status = grpc
        .ingest(IngestRequest {
            events: iee_tests::events_for("big", 11),
        })
        .await
        .expect_err("11 events exceed a limit of 10");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("events"), "{}", status.message());
    assert_eq!(
        status
            .metadata()
            .get("iee-field")
            .and_then(|v| v.to_str().ok()),
        Some("events")
    );
    assert!(cluster.log_records().await.is_empty());
}

async fn oversized_message_is_refused(backend: Backend) {
    let config = iee_ingest::IngestConfig {
        max_message_bytes: 64 << 10,
        ..Default::default()
    };
    let cluster = TestCluster::start_with(backend, config).await;
    let mut grpc = cluster.grpc().await;
    let status = grpc
        .ingest(IngestRequest {
            events: iee_tests::events_for("msg", 2_000),
        })
        .await
        .expect_err("a 100 KiB message exceeds 64 KiB");
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert!(cluster.log_records().await.is_empty());
}

crate::on_both_backends!(
    every_rule_accepts_and_rejects_with_the_field_path,
    oversized_batch_is_refused_as_a_whole,
    oversized_message_is_refused,
);

//! One OpenTelemetry picture of the loop, exported by every service process to a real collector
//! in the test: the event path (ingest → profile apply → signal → proactive decision → outbound
//! entry) and the decision path (Decide → profile and predict; ReportOutcome → ingest → the
//! learner). Calls between processes are parent and child in one trace; hops through the log
//! and the signal history start a new trace linked to the one that caused them.

use std::{collections::HashMap, time::Duration, time::SystemTime};

use iee_api::{
    decide::{
        DecideApi, DecideRequest, Direction, OutboundAction, OutcomeKind, ReportOutcomeRequest,
        WatchOutboundRequest, decision_service_client::DecisionServiceClient,
    },
    ingest::{IngestRequest, touchpoint_service_client::TouchpointServiceClient},
    pb::common::{Channel, CustomerRef, Event, SurveyAnswer, SurveyKind},
    shard::{customer_key, shard_of},
};
use iee_tests::{ExportedSpan, LoopServices, OtlpCollector, SpanKind, TEST_SHARDS};
use tokio_stream::StreamExt;

const TENANT: &str = "traced";

/// An inbound banner under a daily web cap (so a decision reserves a contact), and an outbound
/// e-mail answering detractors (so a survey answer leads to a proactive decision).
const CONFIG: &str = r#"
tenant: traced
exploration: {mode: greedy}
actions:
  - id: banner
    channels: [web]
    direction: inbound
    value: 1
    payload: {title: "Hello"}
  - id: care-call
    channels: [email]
    direction: outbound
    touchpoints: [detractor-care]
    payload: {template: sorry}
contact_policies:
  - {name: web-daily, channels: [web], cap: {max: 5, window: 1d, scope: channel}}
triggers:
  - {name: detractor-care, signal: detractor, channel: email, touchpoint: detractor-care}
"#;

/// The caller's trace of the event path, and its span.
const EVENT_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const EVENT_CALLER: &str = "b7ad6b7169203331";
/// The caller's trace of the decision path, and its spans for Decide and ReportOutcome.
const DECISION_TRACE: &str = "5b8efff798038103d269b633813fc60c";
const DECIDE_CALLER: &str = "eee19b7ec3c1b174";
const OUTCOME_CALLER: &str = "eee19b7ec3c1b175";

/// `message` with the W3C `traceparent` of the caller's span `span` in trace `trace`.
fn traced<T>(message: T, trace: &str, span: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace}-{span}-01").parse().unwrap(),
    );
    request
}

/// The loop's processes, each exporting every span to `collector` within ~100 ms.
async fn services(collector: &OtlpCollector, decide_envs: &[(&str, &str)]) -> LoopServices {
    let services = LoopServices::start_with_envs(1, &[], decide_envs, &collector.otel_envs()).await;
    services.configure(TENANT, CONFIG).await;
    services
}

fn shard(customer_id: &str) -> String {
    shard_of(TENANT, &customer_key(customer_id, ""), TEST_SHARDS).to_string()
}

/// An NPS answer of 2: a detractor.
fn detractor_survey(customer_id: &str) -> Event {
    Event {
        event_id: format!("survey-{customer_id}"),
        tenant_id: TENANT.into(),
        customer_id: customer_id.into(),
        r#type: "survey_response".into(),
        channel: Channel::Email as i32,
        touchpoint: "nps-mail".into(),
        occurred_at: Some(SystemTime::now().into()),
        survey: Some(SurveyAnswer {
            kind: SurveyKind::Nps as i32,
            score: 2,
            ..SurveyAnswer::default()
        }),
        ..Event::default()
    }
}

/// The first outbound entry of the tenant's stream.
async fn first_outbound(services: &LoopServices) -> OutboundAction {
    let mut stream = services
        .decide_client()
        .await
        .watch_outbound(WatchOutboundRequest {
            tenant_id: TENANT.into(),
            start_after: String::new(),
        })
        .await
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
        Ok(Some(Ok(entry))) => entry,
        other => panic!("no outbound entry within 30 s: {other:?}"),
    }
}

/// `span` has `ancestor` among its exported parents.
fn assert_descends(collector: &OtlpCollector, span: &ExportedSpan, ancestor: &ExportedSpan) {
    let chain = collector.ancestors(span);
    assert!(
        chain.iter().any(|s| s.span_id == ancestor.span_id),
        "{} ({}) descends from {} ({}); its parents: {:?}",
        span.name,
        span.service,
        ancestor.name,
        ancestor.span_id,
        chain
            .iter()
            .map(|s| format!("{} {:?} {}", s.name, s.kind, s.service))
            .collect::<Vec<_>>()
    );
}

/// No exported attribute (of spans, their events or links) carries any of `customer_ids`.
fn assert_no_personal_data(collector: &OtlpCollector, customer_ids: &[&str]) {
    let spans = collector.spans();
    assert!(!spans.is_empty());
    for span in &spans {
        for value in span.values() {
            for id in customer_ids {
                assert!(
                    !value.contains(id),
                    "{} of {} carries the customer id {id}: {value:?}",
                    span.name,
                    span.service
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_traced_through_apply_and_signal_to_the_outbound_entry() {
    const CUSTOMER: &str = "pii-detractor-5731";
    let collector = OtlpCollector::start().await;
    let services = services(&collector, &[]).await;
    let mut ingest = TouchpointServiceClient::connect(services.ingest.endpoint())
        .await
        .unwrap();
    let request = IngestRequest {
        events: vec![detractor_survey(CUSTOMER)],
    };
    let response = ingest
        .ingest(traced(request, EVENT_TRACE, EVENT_CALLER))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.accepted, 1, "{response:?}");
    let entry = first_outbound(&services).await;
    assert_eq!(entry.trigger, "detractor-care");

    let ingested = collector
        .wait_in_trace("ingest.Ingest", SpanKind::Server, EVENT_TRACE)
        .await;
    assert_eq!(ingested.service, "iee-ingest");
    assert_eq!(ingested.parent_span_id, EVENT_CALLER);

    // The log entry carried the ingest span's context to the profile node.
    let applied = collector.wait_linked("profile.apply", &ingested).await;
    assert_eq!(applied.service, "iee-profile");
    assert_ne!(
        applied.trace_id, EVENT_TRACE,
        "a hop through the log is a link"
    );
    assert_eq!(applied.parent_span_id, "");
    assert_eq!(applied.attribute("iee.tenant"), Some(TENANT));
    assert_eq!(
        applied.attribute("iee.shard"),
        Some(shard(CUSTOMER).as_str())
    );
    assert_eq!(applied.attribute("iee.event_type"), Some("survey_response"));

    // The signal carried the apply span's context to the decision service.
    let proactive = collector.wait_linked("decide.proactive", &applied).await;
    assert_eq!(proactive.service, "iee-decide");
    assert_ne!(proactive.trace_id, applied.trace_id);
    assert_eq!(proactive.attribute("iee.tenant"), Some(TENANT));
    assert_eq!(
        proactive.attribute("iee.shard"),
        Some(shard(CUSTOMER).as_str())
    );
    assert_eq!(
        proactive.attribute("iee.decision_id"),
        Some(entry.decision_id.as_str())
    );
    assert_eq!(proactive.attribute("iee.trigger"), Some("detractor-care"));
    assert_eq!(
        proactive.attribute("iee.signal_kind"),
        Some("SIGNAL_KIND_DETRACTOR")
    );
    assert_eq!(proactive.attribute("iee.action_ids"), Some("care-call"));

    // The outbound entry continues the proactive decision's trace, so delivery can too.
    assert_eq!(
        entry.traceparent,
        format!("00-{}-{}-01", proactive.trace_id, proactive.span_id)
    );
    // The decision's profile read is a child within that trace, across processes.
    let read = collector
        .wait_in_trace("profile.GetProfile", SpanKind::Server, &proactive.trace_id)
        .await;
    assert_eq!(read.service, "iee-profile");
    assert_descends(&collector, &read, &proactive);

    assert_no_personal_data(&collector, &[CUSTOMER]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_and_its_outcome_are_traced_through_profile_predict_ingest_and_learning() {
    const CUSTOMER: &str = "pii-shopper-9024";
    let collector = OtlpCollector::start().await;
    let services = services(&collector, &[("IEE_DECIDE__PROACTIVE", "false")]).await;
    let decide_at = services.decide.as_ref().unwrap().endpoint();
    let mut decide = DecisionServiceClient::connect(decide_at).await.unwrap();
    let request = DecideRequest {
        customer: Some(CustomerRef {
            tenant_id: TENANT.into(),
            customer_id: CUSTOMER.into(),
            anonymous_id: String::new(),
        }),
        channel: Channel::Web as i32,
        touchpoint: "home".into(),
        direction: Direction::Inbound as i32,
        context: HashMap::new(),
        max_actions: 1,
        request_id: String::new(),
    };
    let decision = decide
        .decide(traced(request, DECISION_TRACE, DECIDE_CALLER))
        .await
        .unwrap()
        .into_inner();
    assert!(decision.degraded.is_empty(), "{:?}", decision.degraded);
    assert_eq!(decision.actions[0].action_id, "banner");
    let outcome = ReportOutcomeRequest {
        tenant_id: TENANT.into(),
        decision_id: decision.decision_id.clone(),
        action_id: "banner".into(),
        kind: OutcomeKind::Click as i32,
        ..ReportOutcomeRequest::default()
    };
    decide
        .report_outcome(traced(outcome, DECISION_TRACE, OUTCOME_CALLER))
        .await
        .unwrap();

    let decided = collector
        .wait_in_trace("decide.Decide", SpanKind::Server, DECISION_TRACE)
        .await;
    assert_eq!(decided.parent_span_id, DECIDE_CALLER);
    assert_eq!(decided.attribute("iee.tenant"), Some(TENANT));
    assert_eq!(
        decided.attribute("iee.shard"),
        Some(shard(CUSTOMER).as_str())
    );
    assert_eq!(
        decided.attribute("iee.decision_id"),
        Some(decision.decision_id.as_str())
    );
    assert_eq!(decided.attribute("iee.action_ids"), Some("banner"));
    // Every remote call of the decision: a client span in decide, the server span in the
    // callee as its child, both in the caller's trace.
    for (name, service) in [
        ("profile.GetProfile", "iee-profile"),
        ("profile.ReserveContact", "iee-profile"),
        ("predict.Score", "iee-predict"),
    ] {
        let served = collector
            .wait_in_trace(name, SpanKind::Server, DECISION_TRACE)
            .await;
        assert_eq!(served.service, service, "{name}");
        let caller = &collector.ancestors(&served)[0];
        assert_eq!(
            (caller.name.as_str(), caller.kind, caller.service.as_str()),
            (name, SpanKind::Client, "iee-decide")
        );
        assert_descends(&collector, &served, &decided);
        if service == "iee-profile" {
            assert_eq!(
                served.attribute("iee.shard"),
                Some(shard(CUSTOMER).as_str())
            );
        }
    }

    let reported = collector
        .wait_in_trace("decide.ReportOutcome", SpanKind::Server, DECISION_TRACE)
        .await;
    assert_eq!(reported.parent_span_id, OUTCOME_CALLER);
    assert_eq!(
        reported.attribute("iee.decision_id"),
        Some(decision.decision_id.as_str())
    );
    assert_eq!(reported.attribute("iee.action_id"), Some("banner"));
    let committed = collector
        .wait_in_trace("profile.CommitContact", SpanKind::Server, DECISION_TRACE)
        .await;
    assert_descends(&collector, &committed, &reported);
    let ingested = collector
        .wait_in_trace("ingest.Ingest", SpanKind::Server, DECISION_TRACE)
        .await;
    assert_eq!(ingested.service, "iee-ingest");
    assert_descends(&collector, &ingested, &reported);

    // The decision's exposure record and the outcome's log entry carried their contexts to
    // the KPI service's aggregation.
    for cause in [&decided, &ingested] {
        let measured = collector.wait_linked("kpi.aggregate", cause).await;
        assert_eq!(measured.service, "iee-kpi");
        assert_ne!(
            measured.trace_id, DECISION_TRACE,
            "a hop through the log is a link"
        );
        assert!(measured.attribute("iee.partition").is_some());
    }

    // The outcome's log entry carried the ingest span's context to the learner.
    let learned = collector.wait_linked("predict.learn", &ingested).await;
    assert_eq!(learned.service, "iee-predict");
    assert_ne!(
        learned.trace_id, DECISION_TRACE,
        "a hop through the log is a link"
    );
    assert_eq!(learned.attribute("iee.tenant"), Some(TENANT));
    assert_eq!(
        learned.attribute("iee.shard"),
        Some(shard(CUSTOMER).as_str())
    );
    assert_eq!(
        learned.attribute("iee.decision_id"),
        Some(decision.decision_id.as_str())
    );
    assert_eq!(learned.attribute("iee.action_id"), Some("banner"));

    assert_no_personal_data(&collector, &[CUSTOMER]);
}

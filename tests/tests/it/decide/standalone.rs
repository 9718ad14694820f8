//! `iee standalone` serves the decision service in process, on its one port and in memory.

use std::time::Duration;

use iee_api::{
    decide::{DecideApi, DecideClient, OutcomeKind, PutConfigRequest, ReportOutcomeRequest},
    ingest::{IngestRequest, TouchpointApi, TouchpointClient},
};
use iee_test_support::wait_until;
use iee_tests::{connect_retrying, spawn_standalone};

use super::support::{TENANT, add_to_cart, basic, web_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_decides_from_the_events_it_ingests() {
    let iee = spawn_standalone(&[]);
    let endpoint = iee.endpoint();
    let decide = connect_retrying(|| DecideClient::connect(endpoint.clone())).await;
    let ingest = connect_retrying(|| TouchpointClient::connect(endpoint.clone())).await;
    let put = decide
        .put_config(PutConfigRequest {
            tenant_id: TENANT.into(),
            yaml: basic(Some(10)),
            ..PutConfigRequest::default()
        })
        .await
        .unwrap();
    assert!(put.errors.is_empty(), "{:?}", put.errors);
    ingest
        .ingest(IngestRequest {
            events: vec![add_to_cart("s-1", "solo")],
        })
        .await
        .unwrap();
    let decision = wait_until(Duration::from_secs(10), "the cart offer", || {
        let decide = decide.clone();
        async move {
            let r = decide.decide(web_request("solo")).await.ok()?;
            (r.actions.first()?.action_id == "cart-saver").then_some(r)
        }
    })
    .await;
    assert_eq!(decision.config_version, put.version);
    let reported = decide
        .report_outcome(ReportOutcomeRequest {
            tenant_id: TENANT.into(),
            decision_id: decision.decision_id.clone(),
            action_id: "cart-saver".into(),
            kind: OutcomeKind::Accept as i32,
            ..ReportOutcomeRequest::default()
        })
        .await
        .unwrap();
    assert!(!reported.duplicate && !reported.offset.is_empty());
}

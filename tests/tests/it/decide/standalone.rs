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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_past_the_admission_limit_are_refused_with_a_retry_delay() {
    let iee = spawn_standalone(&[("IEE_DECIDE__MAX_IN_FLIGHT", "1")]);
    let endpoint = iee.endpoint();
    let decide = connect_retrying(|| DecideClient::connect(endpoint.clone())).await;
    let put = decide
        .put_config(PutConfigRequest {
            tenant_id: TENANT.into(),
            yaml: basic(None),
            ..PutConfigRequest::default()
        })
        .await
        .unwrap();
    assert!(put.errors.is_empty(), "{:?}", put.errors);
    let mut grpc = iee_api::decide::decision_service_client::DecisionServiceClient::new(
        tonic::transport::Channel::from_shared(endpoint.clone())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let mut tasks = Vec::new();
    for i in 0..64 {
        let mut grpc = grpc.clone();
        tasks.push(tokio::spawn(async move {
            grpc.decide(web_request(&format!("burst-{i}"))).await
        }));
    }
    let mut served = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => served += 1,
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
                let retry = status
                    .metadata()
                    .get("retry-after-ms")
                    .and_then(|v| v.to_str().ok());
                assert!(
                    retry.is_some_and(|ms| ms.parse::<u64>().is_ok()),
                    "{status:?}"
                );
                refused += 1;
            }
        }
    }
    assert!(
        served >= 1 && refused >= 1,
        "{served} served, {refused} refused"
    );
    // Refusals leave nothing behind: the next decision is served.
    assert!(grpc.decide(web_request("after")).await.is_ok());
}

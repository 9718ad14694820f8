//! Idempotency: a repeated `event_id` is answered DUPLICATE with the original offset and
//! appends nothing, even when the repeats race each other.

use iee_api::ingest::{EventStatus, IngestRequest, TouchpointApi};
use iee_tests::{Backend, TestCluster, event};

async fn fifty_concurrent_retries_append_exactly_one_entry(backend: Backend) {
    let cluster = TestCluster::start(backend).await;
    let client = cluster.client().await;
    let retries: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .ingest(IngestRequest {
                        events: vec![event("retry-me", "c-42")],
                    })
                    .await
                    .expect("each retry is answered")
            })
        })
        .collect();
    let mut accepted = 0;
    let mut offsets = std::collections::HashSet::new();
    for retry in retries {
        let response = retry.await.expect("task completes");
        let result = &response.results[0];
        match EventStatus::try_from(result.status) {
            Ok(EventStatus::Accepted) => accepted += 1,
            Ok(EventStatus::Duplicate) => {}
            other => panic!("unexpected status {other:?}"),
        }
        offsets.insert(result.offset.clone());
    }
    assert_eq!(accepted, 1, "exactly one of 50 racing retries is accepted");
    assert_eq!(
        offsets.len(),
        1,
        "every retry names the one original offset"
    );
    let records = cluster.log_records().await;
    let copies = records
        .iter()
        .filter(|(_, _, r)| r.event.as_ref().is_some_and(|e| e.event_id == "retry-me"))
        .count();
    assert_eq!(copies, 1);
    assert_eq!(records.len(), 1);
}

async fn duplicate_within_one_batch_is_detected(backend: Backend) {
    let cluster = TestCluster::start(backend).await;
    let client = cluster.client().await;
    let response = client
        .ingest(IngestRequest {
            events: vec![
                event("twice", "c-1"),
                event("other", "c-1"),
                event("twice", "c-1"),
            ],
        })
        .await
        .unwrap();
    let statuses: Vec<i32> = response.results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![
            EventStatus::Accepted as i32,
            EventStatus::Accepted as i32,
            EventStatus::Duplicate as i32
        ]
    );
    assert_eq!(response.results[0].offset, response.results[2].offset);
    assert_eq!((response.accepted, response.duplicates), (2, 1));
    assert_eq!(cluster.log_records().await.len(), 2);
}

async fn same_event_id_in_another_tenant_is_not_a_duplicate(backend: Backend) {
    let cluster = TestCluster::start(backend).await;
    let client = cluster.client().await;
    let mut other_tenant = event("shared-id", "c-1");
    other_tenant.tenant_id = "globex".into();
    let response = client
        .ingest(IngestRequest {
            events: vec![event("shared-id", "c-1"), other_tenant],
        })
        .await
        .unwrap();
    assert_eq!(response.accepted, 2);
    assert_eq!(cluster.log_records().await.len(), 2);
}

async fn dedup_window_expires(backend: Backend) {
    let config = iee_ingest::IngestConfig {
        dedup_window_secs: 1,
        ..Default::default()
    };
    let cluster = TestCluster::start_with(backend, config).await;
    let client = cluster.client().await;
    let send = || async {
        client
            .ingest(IngestRequest {
                events: vec![event("short-lived", "c-1")],
            })
            .await
            .unwrap()
            .results[0]
            .status
    };
    assert_eq!(send().await, EventStatus::Accepted as i32);
    assert_eq!(send().await, EventStatus::Duplicate as i32);
    // Past the window the id is forgotten, as configured.
    let accepted_again = iee_test_support::wait_until(
        std::time::Duration::from_secs(5),
        "the dedup window to pass",
        || async { (send().await == EventStatus::Accepted as i32).then_some(()) },
    )
    .await;
    let () = accepted_again;
    assert_eq!(cluster.log_records().await.len(), 2);
}

crate::on_both_backends!(
    fifty_concurrent_retries_append_exactly_one_entry,
    duplicate_within_one_batch_is_detected,
    same_event_id_in_another_tenant_is_not_a_duplicate,
    dedup_window_expires,
);

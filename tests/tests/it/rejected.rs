//! `ListRejected`: a tenant's dead letters, newest first, paged.

use iee_api::ingest::{IngestError, IngestRequest, ListRejectedRequest, TouchpointApi};
use iee_tests::{Backend, TestCluster, event};

async fn dead_letters_page_newest_first(backend: Backend) {
    let cluster = TestCluster::start(backend).await;
    let client = cluster.client().await;
    for i in 0..7 {
        let mut bad = event(&format!("bad-{i}"), "c-1");
        bad.r#type = "nonsense".into();
        client
            .ingest(IngestRequest { events: vec![bad] })
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = Vec::new();
    loop {
        let page = client
            .list_rejected(ListRejectedRequest {
                tenant_id: "acme".into(),
                page_size: 3,
                page_token: token.clone(),
            })
            .await
            .unwrap();
        pages.push(page.rejected.len());
        for letter in &page.rejected {
            seen.push(letter.event.as_ref().unwrap().event_id.clone());
            let rejection = letter.rejection.as_ref().unwrap();
            assert_eq!(rejection.field, "events[0].type");
            assert!(
                rejection.reason.contains("nonsense"),
                "{}",
                rejection.reason
            );
            assert!(letter.rejected_at.is_some());
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, vec![3, 3, 1]);
    let expected: Vec<String> = (0..7).rev().map(|i| format!("bad-{i}")).collect();
    assert_eq!(seen, expected, "newest first, each exactly once");

    let other = client
        .list_rejected(ListRejectedRequest {
            tenant_id: "globex".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        other.rejected.is_empty(),
        "tenants never see each other's dead letters"
    );
}

async fn bad_list_requests_name_the_field(backend: Backend) {
    let cluster = TestCluster::start(backend).await;
    let client = cluster.client().await;
    for (request, field) in [
        (
            ListRejectedRequest {
                tenant_id: "acme".into(),
                page_size: 1001,
                ..Default::default()
            },
            "page_size",
        ),
        (
            ListRejectedRequest {
                tenant_id: "acme".into(),
                page_token: "garbage".into(),
                ..Default::default()
            },
            "page_token",
        ),
        (ListRejectedRequest::default(), "tenant_id"),
    ] {
        match client.list_rejected(request).await {
            Err(IngestError::InvalidArgument { field: got, .. }) => assert_eq!(got, field),
            other => panic!("expected INVALID_ARGUMENT on {field}, got {other:?}"),
        }
    }
}

async fn dead_letters_are_bounded_per_tenant(backend: Backend) {
    let config = iee_ingest::IngestConfig {
        dead_letter_retention: 5,
        ..Default::default()
    };
    let cluster = TestCluster::start_with(backend, config).await;
    let client = cluster.client().await;
    let bad: Vec<_> = (0..500)
        .map(|i| {
            let mut e = event(&format!("b-{i}"), "c-1");
            e.channel = 0;
            e
        })
        .collect();
    client.ingest(IngestRequest { events: bad }).await.unwrap();
    let page = client
        .list_rejected(ListRejectedRequest {
            tenant_id: "acme".into(),
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .unwrap();
    // Redis trims approximately (whole macro-nodes of ~100 entries); never to fewer than asked.
    assert!(
        (5..=200).contains(&page.rejected.len()),
        "kept {}",
        page.rejected.len()
    );
    assert_eq!(page.rejected[0].event.as_ref().unwrap().event_id, "b-499");
}

crate::on_both_backends!(
    dead_letters_page_newest_first,
    bad_list_requests_name_the_field,
    dead_letters_are_bounded_per_tenant,
);

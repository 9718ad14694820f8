//! `Identify`: links an anonymous id to a customer once, and logs it on the anonymous id's shard.

use iee_api::{
    ingest::{IdentifyRequest, IngestError, TouchpointApi},
    shard::shard_of,
};
use iee_tests::{Backend, TestCluster};

fn link(anonymous_id: &str, customer_id: &str) -> IdentifyRequest {
    IdentifyRequest {
        tenant_id: "acme".into(),
        anonymous_id: anonymous_id.into(),
        customer_id: customer_id.into(),
        method: "login".into(),
        ..Default::default()
    }
}

async fn identify_links_once_and_logs_on_the_anonymous_shard(backend: Backend) {
    let cluster = TestCluster::start(backend).await;
    let client = cluster.client().await;
    let first = client.identify(link("v-1", "c-1")).await.unwrap();
    assert!(first.created);
    assert_eq!(
        first.shard,
        shard_of("acme", "anon:v-1", iee_tests_shards())
    );

    let again = client.identify(link("v-1", "c-1")).await.unwrap();
    assert!(!again.created, "repeating a link changes nothing");
    assert_eq!(again.offset, first.offset, "and appends nothing");

    let records = cluster.log_records().await;
    assert_eq!(records.len(), 1);
    let (shard, offset, record) = &records[0];
    assert_eq!((*shard, offset), (first.shard, &first.offset));
    let event = record.event.as_ref().unwrap();
    assert_eq!(
        (
            event.r#type.as_str(),
            event.anonymous_id.as_str(),
            event.customer_id.as_str()
        ),
        ("identify", "v-1", "c-1")
    );
    assert!(event.properties.contains_key("method"));
}

fn iee_tests_shards() -> u32 {
    iee_tests::TEST_SHARDS
}

async fn identify_refuses_relinking_to_another_customer(backend: Backend) {
    let cluster = TestCluster::start(backend).await;
    let client = cluster.client().await;
    client.identify(link("v-2", "c-1")).await.unwrap();
    match client.identify(link("v-2", "c-9")).await {
        Err(IngestError::Conflict { field, reason }) => {
            assert_eq!(field, "anonymous_id");
            assert!(reason.contains("c-1"), "{reason}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(cluster.log_records().await.len(), 1);
}

async fn identify_names_the_missing_field(backend: Backend) {
    let cluster = TestCluster::start(backend).await;
    let client = cluster.client().await;
    for (request, field) in [
        (link("", "c-1"), "anonymous_id"),
        (link("v-1", ""), "customer_id"),
        (
            IdentifyRequest {
                tenant_id: String::new(),
                ..link("v-1", "c-1")
            },
            "tenant_id",
        ),
        (
            IdentifyRequest {
                channel: 99,
                ..link("v-1", "c-1")
            },
            "channel",
        ),
        (
            IdentifyRequest {
                occurred_at: Some(prost_types::Timestamp {
                    seconds: i64::MAX,
                    nanos: 0,
                }),
                ..link("v-1", "c-1")
            },
            "occurred_at",
        ),
    ] {
        match client.identify(request).await {
            Err(IngestError::InvalidArgument { field: got, .. }) => assert_eq!(got, field),
            other => panic!("expected INVALID_ARGUMENT on {field}, got {other:?}"),
        }
    }
    assert!(cluster.log_records().await.is_empty());
    // Nothing was linked by the refused requests either.
    assert!(client.identify(link("v-1", "c-2")).await.unwrap().created);
}

crate::on_both_backends!(
    identify_links_once_and_logs_on_the_anonymous_shard,
    identify_refuses_relinking_to_another_customer,
    identify_names_the_missing_field,
);

//! Identity merges of an anonymous visitor into a customer on another shard: idempotent under
//! client retries, and applied once when the visitor's owner crashes mid-merge.

use iee_api::{
    ingest::{IdentifyRequest, TouchpointApi},
    shard::{customer_key, shard_of},
};
use iee_tests::{Backend, ProfileNodes, TEST_SHARDS, TestCluster, event};

use super::support::{
    Ledger, SETTLE, SHORT_LEASES, TENANT, anonymous, customer, ingest_into, ingest_one, purchase,
    purchases_of, read_applied, redis_url, shard_of_customer, type_total,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_merge_across_shards_is_idempotent_under_retries() {
    let cluster = TestCluster::start(Backend::Redis).await;
    let nodes = ProfileNodes::start(&redis_url(&cluster), 2, &[]).await;
    let ingest = cluster.client().await;
    let client = nodes.client();
    let id = "merge-c-1";
    let customer_shard = shard_of_customer(id);
    let visitor = (0..)
        .map(|i| format!("merge-v-{i}"))
        .find(|v| shard_of(TENANT, &customer_key("", v), TEST_SHARDS) != customer_shard)
        .unwrap();

    let browse = |n: u32| {
        let mut e = event(&format!("merge-browse-{n}"), "");
        e.anonymous_id.clone_from(&visitor);
        e
    };
    let mut ledger = Ledger::new();
    ingest_into(&ingest, vec![browse(0), browse(1), browse(2)], &mut ledger).await;
    ingest_into(&ingest, vec![purchase(id, 0), purchase(id, 1)], &mut ledger).await;
    let identify = IdentifyRequest {
        tenant_id: TENANT.into(),
        anonymous_id: visitor.clone(),
        customer_id: id.into(),
        method: "login".into(),
        ..Default::default()
    };
    // A client retrying its identify call: before and after a later anonymous event.
    let first = ingest.identify(identify.clone()).await.unwrap();
    let second = ingest.identify(identify.clone()).await.unwrap();
    let after_identify = ingest_one(&ingest, browse(3)).await;
    let third = ingest.identify(identify).await.unwrap();
    assert!(first.created && !second.created && !third.created);
    assert_eq!(
        (&second.offset, &third.offset),
        (&first.offset, &first.offset)
    );

    // The anonymous profile is a tombstone naming the customer once its shard applied the
    // later event (which it forwarded to the customer's shard).
    let anon = read_applied(&client, &anonymous(&visitor), &after_identify).await;
    assert!(anon.found);
    assert_eq!(anon.profile.unwrap_or_default().merged_into_customer_id, id);

    // Everything appended to the customer's shard so far (merge and forwarded event included).
    let tail = nodes
        .stores()
        .log
        .read(customer_shard, None, 10_000)
        .await
        .unwrap()
        .last()
        .expect("the customer's log has entries")
        .offset
        .clone();
    let profile = read_applied(&client, &customer(id), &tail)
        .await
        .profile
        .unwrap_or_default();
    let links = profile.identity.clone().unwrap_or_default().anonymous_links;
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0].anonymous_id, visitor);
    assert!(links[0].merged);
    assert_eq!(links[0].merged_events, 3, "the visitor's three page views");
    assert_eq!(
        type_total(&profile, "page_view"),
        4,
        "3 merged + 1 forwarded"
    );
    assert_eq!(type_total(&profile, "identify"), 1);
    assert_eq!(purchases_of(&profile).0, 2);
    assert_eq!(purchases_of(&profile).2, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_merge_is_applied_once_when_the_anonymous_owner_crashes_mid_merge() {
    let cluster = TestCluster::start(Backend::Redis).await;
    // Writes behind by 5 s: the crashed owner has handed the visitor over (appended to the
    // customer's log) but written neither the tombstone nor its checkpoint, so the next owner
    // replays the identify event and hands the visitor over a second time.
    let mut envs = SHORT_LEASES.to_vec();
    envs.extend([
        ("IEE_PROFILE__FLUSH_INTERVAL_MS", "5000"),
        ("IEE_PROFILE__TIMER_POLL_MS", "5000"),
    ]);
    let mut nodes = ProfileNodes::start(&redis_url(&cluster), 2, &envs).await;
    let owners = nodes.owners().await;
    let owner_of = |key: &str| {
        let shard = shard_of(TENANT, key, TEST_SHARDS) as usize;
        owners[shard].as_ref().map(|o| o.node_id.clone())
    };
    // The visitor's shard on one node, the customer's on the other.
    let id = (0..)
        .map(|i| format!("crash-c-{i}"))
        .find(|c| owner_of(c).as_deref() == Some("p1"))
        .unwrap();
    let visitor = (0..)
        .map(|i| format!("crash-v-{i}"))
        .find(|v| owner_of(&customer_key("", v)).as_deref() == Some("p0"))
        .unwrap();
    let ingest = cluster.client().await;
    let client = nodes.client();
    let browse = |n: u32| {
        let mut e = event(&format!("crash-browse-{n}"), "");
        e.anonymous_id.clone_from(&visitor);
        e
    };
    let mut ledger = Ledger::new();
    ingest_into(&ingest, vec![browse(0), browse(1), browse(2)], &mut ledger).await;
    ingest_into(
        &ingest,
        vec![purchase(&id, 0), purchase(&id, 1)],
        &mut ledger,
    )
    .await;
    ingest
        .identify(IdentifyRequest {
            tenant_id: TENANT.into(),
            anonymous_id: visitor.clone(),
            customer_id: id.clone(),
            method: "login".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let after_identify = ingest_one(&ingest, browse(3)).await;
    let anon = read_applied(&client, &anonymous(&visitor), &after_identify).await;
    assert_eq!(anon.profile.unwrap_or_default().merged_into_customer_id, id);

    nodes.kill(0).await;
    nodes.wait_settled(SETTLE).await;
    // The survivor replayed the visitor's shard: still a tombstone naming the customer.
    let anon = read_applied(&nodes.client(), &anonymous(&visitor), &after_identify).await;
    assert_eq!(anon.profile.unwrap_or_default().merged_into_customer_id, id);
    eprintln!(
        "[record] the survivor handed the visitor over {} time(s) on replay (deduplicated)",
        nodes.metric(1, "iee_profile_merges_total").await
    );

    let customer_shard = shard_of_customer(&id);
    let tail = nodes
        .stores()
        .log
        .read(customer_shard, None, 10_000)
        .await
        .unwrap()
        .last()
        .expect("the customer's log has entries")
        .offset
        .clone();
    let profile = read_applied(&nodes.client(), &customer(&id), &tail)
        .await
        .profile
        .unwrap_or_default();
    let links = profile.identity.clone().unwrap_or_default().anonymous_links;
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0].merged_events, 3);
    assert_eq!(
        type_total(&profile, "page_view"),
        4,
        "3 merged + 1 forwarded"
    );
    assert_eq!(type_total(&profile, "identify"), 1);
    assert_eq!(purchases_of(&profile), (2, ledger[&id].revenue, 2));
}

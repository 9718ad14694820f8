//! Contact reservations under a frequency cap: never exceeded under concurrency, and kept for
//! customers without events across passivation.

use std::collections::HashSet;

use iee_api::{
    pb::common::Channel,
    profile::{
        CapScope, ContactCap, DenialReason, ProfileApi, ReleaseContactRequest,
        ReserveContactRequest, reserve_contact_response::Verdict,
    },
};
use iee_test_support::wait_until;
use iee_tests::{Backend, ProfileNodes, TestCluster, event};

use super::support::{SETTLE, customer, ingest_one, read_applied, redis_url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reservations_never_exceed_the_cap() {
    let cluster = TestCluster::start(Backend::Redis).await;
    let nodes = ProfileNodes::start(&redis_url(&cluster), 2, &[]).await;
    let ingest = cluster.client().await;
    let id = "cap-1";
    let offset = ingest_one(&ingest, event("cap-1-seen", id)).await;
    let client = nodes.client();
    assert!(read_applied(&client, &customer(id), &offset).await.found);

    let reserve = |i: usize| ReserveContactRequest {
        decision_id: format!("d-{i}"),
        ..capped_reservation(id)
    };
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..200 {
        let client = client.clone();
        let request = reserve(i);
        calls.spawn(async move { client.reserve_contact(request).await });
    }
    let (mut granted, mut denied) = (Vec::new(), 0);
    while let Some(answer) = calls.join_next().await {
        match answer.unwrap().expect("ReserveContact answers").verdict {
            Some(Verdict::Reservation(r)) => granted.push(r.reservation_id),
            Some(Verdict::Denial(d)) => {
                assert_eq!(d.reason, DenialReason::CapReached as i32, "{d:?}");
                assert_eq!(d.cap_name, "email-hourly");
                denied += 1;
            }
            None => panic!("a verdict is set"),
        }
    }
    assert_eq!((granted.len(), denied), (3, 197));
    assert_eq!(granted.iter().collect::<HashSet<_>>().len(), 3);

    // The cap counts pending reservations exactly: one released, one more fits, then none.
    client
        .release_contact(ReleaseContactRequest {
            customer: Some(customer(id)),
            reservation_id: granted[0].clone(),
        })
        .await
        .unwrap();
    let again = client.reserve_contact(reserve(200)).await.unwrap().verdict;
    assert!(matches!(again, Some(Verdict::Reservation(_))), "{again:?}");
    let full = client.reserve_contact(reserve(201)).await.unwrap().verdict;
    assert!(matches!(full, Some(Verdict::Denial(_))), "{full:?}");
    let profile = read_applied(&client, &customer(id), &offset)
        .await
        .profile
        .unwrap_or_default();
    let pending: usize = profile
        .contacts
        .iter()
        .filter(|c| c.channel == Channel::Email as i32)
        .map(|c| c.pending.len())
        .sum();
    assert_eq!(pending, 3);
}

/// A reservation of an e-mail contact with `id` under a cap of 3 per hour.
fn capped_reservation(id: &str) -> ReserveContactRequest {
    ReserveContactRequest {
        customer: Some(customer(id)),
        channel: Channel::Email as i32,
        action_id: "welcome".into(),
        caps: vec![ContactCap {
            name: "email-hourly".into(),
            scope: CapScope::Channel as i32,
            window: Some(prost_types::Duration {
                seconds: 3_600,
                nanos: 0,
            }),
            max_count: 3,
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_of_a_customer_without_events_survive_passivation() {
    // A decision may contact a customer whose first event has not been applied yet (or who is
    // known only to the caller); the budget must hold for them too.
    let cluster = TestCluster::start(Backend::Redis).await;
    let nodes = ProfileNodes::start(
        &redis_url(&cluster),
        1,
        &[
            ("IEE_PROFILE__PASSIVATE_AFTER_SECS", "1"),
            ("IEE_PROFILE__TIMER_POLL_MS", "200"),
        ],
    )
    .await;
    let client = nodes.client();
    let id = "unseen-1";
    let mut granted = 0;
    for _ in 0..3 {
        let verdict = client
            .reserve_contact(capped_reservation(id))
            .await
            .unwrap()
            .verdict;
        granted += usize::from(matches!(verdict, Some(Verdict::Reservation(_))));
    }
    assert_eq!(granted, 3);
    let nodes_ref = &nodes;
    wait_until(
        SETTLE,
        "the customer's actor to be passivated",
        || async move {
            let resident = nodes_ref.metric(0, "iee_profile_resident_actors").await;
            let passivations = nodes_ref.metric(0, "iee_profile_passivations_total").await;
            (resident == 0.0 && passivations > 0.0).then_some(())
        },
    )
    .await;
    for _ in 0..3 {
        let verdict = client
            .reserve_contact(capped_reservation(id))
            .await
            .unwrap()
            .verdict;
        granted += usize::from(matches!(verdict, Some(Verdict::Reservation(_))));
    }
    assert_eq!(
        granted, 3,
        "the cap of 3 held across passivation (the first reservations were kept)"
    );
}

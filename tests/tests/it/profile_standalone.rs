//! The profile service inside `iee standalone` (in-memory backend, one node owning every shard):
//! events become profiles with read-your-writes, signals stream and resume, bad requests name
//! their field, erasure forgets the customer.

use std::time::Duration;

use iee_api::{
    ingest::{IngestRequest, TouchpointApi, TouchpointClient},
    pb::common::{CustomerRef, Event, Money, SurveyAnswer, SurveyKind},
    profile::{
        CapScope, ContactCap, EraseCustomerRequest, GetProfileRequest, ProfileApi, ProfileClient,
        ProfileError, ReserveContactRequest, RouteOptions, SignalKind, WatchSignalsRequest,
    },
};
use iee_test_support::ServerProcess;
use iee_tests::{event, spawn_standalone};
use tokio_stream::StreamExt;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const SHARDS: &str = "64";

fn start() -> ServerProcess {
    spawn_standalone(&[("IEE_CLUSTER__SHARD_COUNT", SHARDS)])
}

async fn clients(iee: &ServerProcess) -> (TouchpointClient, ProfileClient) {
    let ingest = TouchpointClient::connect(iee.endpoint()).await.unwrap();
    let profile = ProfileClient::connect(
        vec![iee.addr.clone()],
        SHARDS.parse().unwrap(),
        RouteOptions::default(),
    )
    .unwrap();
    (ingest, profile)
}

fn customer(id: &str) -> Option<CustomerRef> {
    Some(CustomerRef {
        tenant_id: "acme".into(),
        customer_id: id.into(),
        anonymous_id: String::new(),
    })
}

fn purchase(id: &str, customer_id: &str, amount_minor: i64) -> Event {
    Event {
        r#type: "purchase".into(),
        value: Some(Money {
            amount_minor,
            currency: "EUR".into(),
        }),
        ..event(id, customer_id)
    }
}

fn nps(id: &str, customer_id: &str, score: i32) -> Event {
    Event {
        r#type: "survey_response".into(),
        survey: Some(SurveyAnswer {
            kind: SurveyKind::Nps as i32,
            score,
            ..SurveyAnswer::default()
        }),
        ..event(id, customer_id)
    }
}

async fn ingest(client: &TouchpointClient, events: Vec<Event>) -> String {
    let response = client.ingest(IngestRequest { events }).await.unwrap();
    assert_eq!(response.rejected, 0, "{response:?}");
    response.results.last().unwrap().offset.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_fold_into_the_profile_with_read_your_writes() {
    let iee = start();
    let (ingest_client, profile) = clients(&iee).await;
    let offset = ingest(
        &ingest_client,
        vec![
            event("p-1", "c-1"),
            purchase("p-2", "c-1", 1_000),
            purchase("p-3", "c-1", 2_500),
            purchase("p-2", "c-1", 1_000), // a duplicate: applied once
        ],
    )
    .await;
    let read = profile
        .get_profile(GetProfileRequest {
            customer: customer("c-1"),
            min_applied_offset: offset,
        })
        .await
        .unwrap();
    assert!(read.found);
    let p = read.profile.unwrap();
    let rfm = p.rfm.unwrap();
    assert_eq!(rfm.purchase_count, 2);
    assert_eq!(rfm.net_revenue.unwrap().amount_minor, 3_500);
    assert_eq!(p.event_type_counters["page_view"].total, 1);
    assert_eq!(p.version, 3, "three events applied, one state version each");

    let unknown = profile
        .get_profile(GetProfileRequest {
            customer: customer("nobody"),
            min_applied_offset: String::new(),
        })
        .await
        .unwrap();
    assert!(!unknown.found);

    let channel = tonic::transport::Channel::from_shared(iee.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    // SERVING once the node owns its shards and has caught up (the probe runs periodically).
    let health = HealthClient::new(channel);
    iee_test_support::wait_until(Duration::from_secs(15), "profile service SERVING", || {
        let mut health = health.clone();
        async move {
            let status = health
                .check(HealthCheckRequest {
                    service: "iee.profile.v1.ProfileService".into(),
                })
                .await
                .ok()?
                .into_inner()
                .status;
            (status == ServingStatus::Serving as i32).then_some(())
        }
    })
    .await;
    assert!(iee.signal_and_wait("TERM").await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_stream_live_and_resume_after_a_cursor() {
    let iee = start();
    let (ingest_client, profile) = clients(&iee).await;
    let watch = WatchSignalsRequest {
        tenant_id: "acme".into(),
        kinds: vec![SignalKind::Detractor as i32],
        ..WatchSignalsRequest::default()
    };
    let mut live = profile.watch_signals(watch.clone()).await.unwrap();
    ingest(&ingest_client, vec![nps("s-1", "c-7", 3)]).await;
    let first = tokio::time::timeout(Duration::from_secs(10), live.next())
        .await
        .expect("a detractor signal arrives")
        .unwrap()
        .unwrap();
    assert_eq!(first.kind, SignalKind::Detractor as i32);
    assert_eq!(first.customer.as_ref().unwrap().customer_id, "c-7");
    assert!(!first.cursor.is_empty());

    // A promoter emits nothing; a second detractor answer does.
    let offset = ingest(
        &ingest_client,
        vec![nps("s-2", "c-7", 10), nps("s-3", "c-7", 1)],
    )
    .await;
    profile
        .get_profile(GetProfileRequest {
            customer: customer("c-7"),
            min_applied_offset: offset,
        })
        .await
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), live.next())
        .await
        .expect("the second detractor signal arrives")
        .unwrap()
        .unwrap();
    assert_ne!(second.signal_id, first.signal_id);

    // A new watcher resuming after the first cursor gets the second from the history.
    let mut resumed = profile
        .watch_signals(WatchSignalsRequest {
            start_after: [(first.shard, first.cursor.clone())].into_iter().collect(),
            ..watch
        })
        .await
        .unwrap();
    let replayed = tokio::time::timeout(Duration::from_secs(10), resumed.next())
        .await
        .expect("the history is replayed")
        .unwrap()
        .unwrap();
    assert_eq!(replayed.signal_id, second.signal_id);
    assert_eq!(replayed.cursor, second.cursor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_profile_requests_name_the_field() {
    let iee = start();
    let (_, profile) = clients(&iee).await;
    let field_of = |result: Result<_, ProfileError>| match result {
        Err(ProfileError::InvalidArgument { field, .. }) => field,
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    };
    let no_tenant = profile
        .get_profile(GetProfileRequest {
            customer: Some(CustomerRef {
                customer_id: "c-1".into(),
                ..CustomerRef::default()
            }),
            min_applied_offset: String::new(),
        })
        .await;
    assert_eq!(field_of(no_tenant.map(|_| ())), "customer.tenant_id");
    let bad_offset = profile
        .get_profile(GetProfileRequest {
            customer: customer("c-1"),
            min_applied_offset: "yesterday".into(),
        })
        .await;
    assert_eq!(field_of(bad_offset.map(|_| ())), "min_applied_offset");
    let zero_cap = profile
        .reserve_contact(ReserveContactRequest {
            customer: customer("c-1"),
            channel: iee_api::pb::common::Channel::Email as i32,
            action_id: "welcome".into(),
            caps: vec![ContactCap {
                name: "weekly".into(),
                scope: CapScope::Channel as i32,
                window: Some(prost_types::Duration {
                    seconds: 604_800,
                    nanos: 0,
                }),
                max_count: 0,
            }],
            ..ReserveContactRequest::default()
        })
        .await;
    assert_eq!(field_of(zero_cap.map(|_| ())), "caps[0].max_count");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_forgets_the_customer_and_refuses_later_events() {
    let iee = start();
    let (ingest_client, profile) = clients(&iee).await;
    let offset = ingest(&ingest_client, vec![purchase("e-1", "c-9", 700)]).await;
    let read = |min_applied_offset: String| {
        let profile = profile.clone();
        async move {
            profile
                .get_profile(GetProfileRequest {
                    customer: customer("c-9"),
                    min_applied_offset,
                })
                .await
                .unwrap()
        }
    };
    assert!(read(offset).await.found);
    let erased = profile
        .erase_customer(EraseCustomerRequest {
            customer: customer("c-9"),
            reason: "test".into(),
        })
        .await
        .unwrap();
    assert!(erased.erased);
    assert!(
        erased
            .deleted
            .iter()
            .any(|d| d.starts_with("profile (shard")),
        "the receipt lists the profile: {:?}",
        erased.deleted
    );
    assert!(
        erased.deleted.iter().all(|d| !d.contains("c-9")),
        "the receipt names no id: {:?}",
        erased.deleted
    );
    assert!(!read(String::new()).await.found);
    let again = profile
        .erase_customer(EraseCustomerRequest {
            customer: customer("c-9"),
            reason: "test".into(),
        })
        .await
        .unwrap();
    assert!(!again.erased, "a second erasure finds nothing");
    assert!(again.deleted.is_empty());

    let later = ingest(&ingest_client, vec![purchase("e-2", "c-9", 900)]).await;
    assert!(
        !read(later).await.found,
        "an event after the erasure is refused, not a new profile"
    );
}

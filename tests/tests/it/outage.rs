//! Redis failures: UNAVAILABLE while it is down or stalled, nothing acknowledged that is not
//! in the log, ingestion resumes when it is back; RESOURCE_EXHAUSTED when work piles up.

use std::time::Duration;

use iee_api::ingest::{EventStatus, IngestError, IngestRequest, TouchpointApi};
use iee_test_support::signal;
use iee_tests::{Backend, TestCluster, event, events_for};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_unavailable_and_ingestion_resumes_after_restart() {
    let mut cluster = TestCluster::start(Backend::Redis).await;
    let client = cluster.client().await;
    let ok = client
        .ingest(IngestRequest {
            events: events_for("before", 5),
        })
        .await
        .unwrap();
    assert_eq!(ok.accepted, 5);

    cluster.redis_mut().kill();
    let err = client
        .ingest(IngestRequest {
            events: events_for("during", 5),
        })
        .await
        .expect_err("no acknowledgement without the log");
    assert!(matches!(err, IngestError::Unavailable(_)), "{err:?}");

    cluster.redis_mut().restart();
    let resumed =
        iee_test_support::wait_until(Duration::from_secs(15), "ingest to recover", || {
            let client = client.clone();
            async move {
                client
                    .ingest(IngestRequest {
                        events: events_for("during", 5),
                    })
                    .await
                    .ok()
            }
        })
        .await;
    assert_eq!(
        resumed.accepted, 5,
        "the restarted (empty) Redis takes the retried batch"
    );
    assert!(cluster.ingest.readiness().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_redis_times_out_and_the_retry_appends_exactly_once() {
    let config = iee_ingest::IngestConfig::default();
    let mut cluster = TestCluster::start_custom(Backend::Redis, config, 1_000).await;
    let client = cluster.client().await;
    let pid = cluster.redis_mut().pid().unwrap();

    signal(pid, "STOP");
    let err = client
        .ingest(IngestRequest {
            events: vec![event("stalled", "c-1")],
        })
        .await
        .expect_err("a stalled Redis answers nothing within the reply timeout");
    signal(pid, "CONT");
    assert!(matches!(err, IngestError::Unavailable(_)), "{err:?}");

    // The timed-out script may still have run once Redis woke up; the client's retry must not
    // produce a second copy either way.
    let retry = iee_test_support::wait_until(Duration::from_secs(15), "ingest to recover", || {
        let client = client.clone();
        async move {
            client
                .ingest(IngestRequest {
                    events: vec![event("stalled", "c-1")],
                })
                .await
                .ok()
        }
    })
    .await;
    let status = retry.results[0].status;
    assert!(
        status == EventStatus::Accepted as i32 || status == EventStatus::Duplicate as i32,
        "{retry:?}"
    );
    let copies = cluster
        .log_records()
        .await
        .iter()
        .filter(|(_, _, r)| r.event.as_ref().unwrap().event_id == "stalled")
        .count();
    assert_eq!(copies, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_piling_up_is_refused_with_resource_exhausted() {
    let config = iee_ingest::IngestConfig {
        max_batch_events: 100,
        max_in_flight_events: 100,
        overload_wait_ms: 50,
        ..Default::default()
    };
    let mut cluster = TestCluster::start_custom(Backend::Redis, config, 5_000).await;
    let mut grpc = cluster.grpc().await;
    let pid = cluster.redis_mut().pid().unwrap();

    signal(pid, "STOP");
    let mut stuck_client = grpc.clone();
    let stuck = tokio::spawn(async move {
        stuck_client
            .ingest(IngestRequest {
                events: events_for("stuck", 100),
            })
            .await
    });
    // Wait until the stuck batch holds all the capacity.
    let metrics = cluster.metrics.clone();
    iee_test_support::wait_until(Duration::from_secs(5), "the first batch in flight", || {
        let text = metrics.encode();
        async move {
            text.contains("iee_ingest_batch_events_count 1")
                .then_some(())
        }
    })
    .await;
    let status = grpc
        .ingest(IngestRequest {
            events: events_for("more", 10),
        })
        .await
        .expect_err("no capacity left");
    signal(pid, "CONT");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    let retry_after = status
        .metadata()
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert_eq!(retry_after, Some(100));
    assert!(
        cluster
            .metrics
            .encode()
            .contains("iee_ingest_overloaded_requests_total 1")
    );
    let first = stuck
        .await
        .unwrap()
        .expect("the stuck batch completes once Redis resumes");
    assert_eq!(first.into_inner().accepted, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_event_log() {
    let mut cluster = TestCluster::start(Backend::Redis).await;
    let mut health = HealthClient::new(cluster.channel().await);
    let mut expect = async |want: ServingStatus, what: &str| {
        for service in ["", "iee.ingest.v1.TouchpointService"] {
            let health = &mut health;
            iee_test_support::wait_until(Duration::from_secs(15), what, || {
                let mut health = health.clone();
                async move {
                    let status = health
                        .check(HealthCheckRequest {
                            service: service.into(),
                        })
                        .await
                        .ok()?
                        .into_inner()
                        .status;
                    (status == want as i32).then_some(())
                }
            })
            .await;
        }
    };
    expect(ServingStatus::Serving, "SERVING at start").await;
    cluster.redis_mut().kill();
    expect(ServingStatus::NotServing, "NOT_SERVING while Redis is down").await;
    cluster.redis_mut().restart();
    expect(ServingStatus::Serving, "SERVING once Redis is back").await;
}

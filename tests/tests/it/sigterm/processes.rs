//! Every service binary of the loop over one private Redis, terminated together.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use iee_api::{
    decide::{
        GetConfigRequest, WatchOutboundRequest, decision_service_client::DecisionServiceClient,
        decision_service_server,
    },
    ingest::{
        IngestRequest, touchpoint_service_client::TouchpointServiceClient,
        touchpoint_service_server,
    },
    kpi::{
        ListMetricsRequest, QueryMetricsRequest, kpi_service_client::KpiServiceClient,
        kpi_service_server,
    },
    pb::common::CustomerRef,
    predict::{
        ListModelsRequest, prediction_service_client::PredictionServiceClient,
        prediction_service_server,
    },
    profile::{
        GetProfileRequest, profile_service_client::ProfileServiceClient, profile_service_server,
    },
    shard::shard_of,
};
use iee_test_support::{ServerProcess, wait_until};
use iee_tests::{LoopServices, TEST_SHARDS, events_for};
use tonic::transport::Channel;

use super::watch::{
    Exit, GRACE, GRACE_MS, Target, boxed, connect, ready, record, sigterm, watch_termination,
};

/// `server.drain_timeout_ms` of `iee-decide`: long, so that an open `WatchOutbound` stream
/// holding the drain would show as an exit after it.
const DECIDE_DRAIN: Duration = Duration::from_millis(20_000);
const DECIDE_DRAIN_MS: &str = "20000";
pub(super) const TENANT: &str = "acme";
/// Events ingested before the SIGTERM, and by each ingest call made during the grace period.
const EVENTS_BEFORE: usize = 1_500;
const EVENTS_PER_GRACE_CALL: usize = 50;

fn ingest_target(addr: String) -> Target {
    Target {
        binary: "iee-ingest",
        addr,
        services: vec![touchpoint_service_server::SERVICE_NAME],
        // Events acknowledged during the grace period: the KPI check counts them too.
        call: Arc::new(|channel, label| {
            boxed(async move {
                let response = TouchpointServiceClient::new(channel)
                    .ingest(IngestRequest {
                        events: events_for(&format!("grace-{label}"), EVENTS_PER_GRACE_CALL),
                    })
                    .await
                    .map_err(|e| e.to_string())?
                    .into_inner();
                let accepted = usize::try_from(response.accepted).unwrap();
                if accepted == EVENTS_PER_GRACE_CALL {
                    Ok(())
                } else {
                    Err(format!("{accepted} of {EVENTS_PER_GRACE_CALL} accepted"))
                }
            })
        }),
    }
}

fn predict_target(addr: String) -> Target {
    Target {
        binary: "iee-predict",
        addr,
        services: vec![prediction_service_server::SERVICE_NAME],
        call: Arc::new(|channel, _| {
            boxed(async move {
                PredictionServiceClient::new(channel)
                    .list_models(ListModelsRequest {
                        tenant_id: TENANT.into(),
                        ..ListModelsRequest::default()
                    })
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
        }),
    }
}

fn decide_target(addr: String) -> Target {
    Target {
        binary: "iee-decide",
        addr,
        services: vec![decision_service_server::SERVICE_NAME],
        call: Arc::new(|channel, _| {
            boxed(async move {
                DecisionServiceClient::new(channel)
                    .get_config(GetConfigRequest {
                        tenant_id: TENANT.into(),
                        version: String::new(),
                    })
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
        }),
    }
}

fn kpi_target(addr: String) -> Target {
    Target {
        binary: "iee-kpi",
        addr,
        services: vec![kpi_service_server::SERVICE_NAME],
        call: Arc::new(|channel, _| {
            boxed(async move {
                let listed = KpiServiceClient::new(channel)
                    .list_metrics(ListMetricsRequest {
                        tenant_id: TENANT.into(),
                    })
                    .await
                    .map_err(|e| e.to_string())?
                    .into_inner();
                if listed.metrics.is_empty() {
                    Err("no metrics listed".into())
                } else {
                    Ok(())
                }
            })
        }),
    }
}

fn profile_target(addr: String, customer_id: String) -> Target {
    Target {
        binary: "iee-profile",
        addr,
        services: vec![profile_service_server::SERVICE_NAME],
        // A customer of a shard this node owns: answered here, not redirected.
        call: Arc::new(move |channel, _| {
            let customer_id = customer_id.clone();
            boxed(async move {
                ProfileServiceClient::new(channel)
                    .get_profile(GetProfileRequest {
                        customer: Some(CustomerRef {
                            tenant_id: TENANT.into(),
                            customer_id,
                            anonymous_id: String::new(),
                        }),
                        min_applied_offset: String::new(),
                    })
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
        }),
    }
}

const DECIDE_CONFIG: &str = r"
tenant: acme
exploration: {mode: greedy}
actions:
  - id: banner
    channels: [web]
    direction: inbound
    value: 1
";

/// The KPI environment of [`LoopServices`], for the restarted process.
fn spawn_kpi(redis_url: &str) -> ServerProcess {
    let shards = TEST_SHARDS.to_string();
    ServerProcess::spawn(
        "iee-kpi",
        &[
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            redis_url,
            "--metrics-listen",
            "",
        ],
        &[
            ("IEE_CLUSTER__SHARD_COUNT", &shards),
            ("IEE_KPI__PARTITIONS", "4"),
            ("IEE_KPI__POLL_BLOCK_MS", "50"),
            ("IEE_KPI__GAUGE_INTERVAL_SECS", "0"),
        ],
    )
}

/// The number of `TENANT` events the KPI service behind `channel` has counted today.
async fn events_counted(channel: &Channel) -> Option<u64> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let start = UNIX_EPOCH + Duration::from_secs(now / 86_400 * 86_400);
    let response = KpiServiceClient::new(channel.clone())
        .query_metrics(QueryMetricsRequest {
            tenant_id: TENANT.into(),
            metrics: vec!["events".into()],
            start_time: Some(start.into()),
            end_time: Some((start + Duration::from_secs(2 * 86_400)).into()),
            ..QueryMetricsRequest::default()
        })
        .await
        .ok()?
        .into_inner();
    Some(
        response
            .series
            .iter()
            .filter(|s| s.metric == "events")
            .flat_map(|s| s.points.first())
            .map(|p| p.count)
            .sum(),
    )
}

/// Every service of the loop, each its own process over one private Redis, receives SIGTERM at
/// the same moment, as in a namespace deletion: each stops as Kubernetes expects it to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_process_goes_unready_serves_through_the_grace_then_drains_and_exits_zero() {
    let common = vec![(
        "IEE_SERVER__SHUTDOWN_GRACE_MS".to_owned(),
        GRACE_MS.to_owned(),
    )];
    // Leases of 60 s: within the test only a hand-off moves the terminated node's shards. The
    // logs are kept until the KPI service has read them, as a deployment with KPI does.
    let profile_envs = [
        ("IEE_PROFILE__LEASE_TTL_MS", "60000"),
        ("IEE_PROFILE__LOG_CONSUMERS", r#"["profile","kpi"]"#),
    ];
    let services = LoopServices::start_with_envs(
        2,
        &profile_envs,
        &[("IEE_SERVER__DRAIN_TIMEOUT_MS", DECIDE_DRAIN_MS)],
        &common,
    )
    .await;
    services.configure(TENANT, DECIDE_CONFIG).await;
    services.send(events_for("before", EVENTS_BEFORE)).await;

    let LoopServices {
        redis,
        mut profiles,
        ingest,
        predict,
        mut decide,
        kpi,
        ..
    } = services;
    let decide = decide.take().expect("iee-decide runs");
    let leaving = 1;
    let leaving_shards = profiles.shards_of(leaving).await;
    let owned_customer = (0..)
        .map(|i| format!("held-{i}"))
        .find(|id| leaving_shards.contains(&shard_of(TENANT, id, TEST_SHARDS)))
        .unwrap();
    let targets = [
        ingest_target(ingest.addr.clone()),
        predict_target(predict.addr.clone()),
        decide_target(decide.addr.clone()),
        kpi_target(kpi.addr.clone()),
        profile_target(profiles.node(leaving).addr.clone(), owned_customer),
    ];
    let mut channels = Vec::new();
    for target in &targets {
        channels.push(ready(target).await);
    }
    // A delivery system's stream: it ends when decide begins to shut down, so it does not hold
    // the drain.
    let mut outbound = DecisionServiceClient::new(connect(decide.endpoint()).await.unwrap())
        .watch_outbound(WatchOutboundRequest {
            tenant_id: TENANT.into(),
            start_after: String::new(),
        })
        .await
        .expect("WatchOutbound opens")
        .into_inner();

    let profile_pid = profiles.node(leaving).pid();
    let exits = [
        sigterm(ingest),
        sigterm(predict),
        sigterm(decide),
        sigterm(kpi),
        Exit {
            pid: profile_pid,
            wait: profiles.terminate(leaving),
        },
    ];
    let mut watching = Vec::new();
    for ((target, channel), exit) in targets.into_iter().zip(channels).zip(exits) {
        watching.push(tokio::spawn(async move {
            let timeline = watch_termination(&target, channel, exit).await;
            (target.binary, timeline)
        }));
    }
    let mut timelines = Vec::new();
    for watch in watching {
        let (name, timeline) = watch.await.unwrap();
        record(name, &timeline);
        timelines.push((name, timeline));
    }

    // Decide ended the open stream cleanly at shutdown and exited without waiting for the
    // drain deadline.
    let (_, decide_timeline) = timelines
        .iter()
        .find(|(name, _)| *name == "iee-decide")
        .unwrap();
    assert!(
        decide_timeline.exited < GRACE + DECIDE_DRAIN,
        "an open outbound stream must not hold iee-decide's drain: {decide_timeline:?}"
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), outbound.message())
        .await
        .expect("the outbound stream has ended");
    assert!(
        matches!(ended, Ok(None)),
        "the outbound stream ends cleanly, without an action: {ended:?}"
    );

    // Profile: the node handed its shards to the one left, long before its leases (60 s)
    // could have expired.
    let waited = profiles.wait_all_owned(Duration::from_secs(20)).await;
    eprintln!(
        "[record] iee-profile: every shard owned by the remaining node {} ms after the checks \
         above ended",
        waited.as_millis()
    );

    // KPI: every acknowledged event (before the SIGTERM and during ingest's grace period) is
    // counted exactly once by a new KPI process resuming from the stopped one's commits.
    let expected = u64::try_from(EVENTS_BEFORE + 2 * EVENTS_PER_GRACE_CALL).unwrap();
    let again = spawn_kpi(&redis.url());
    let channel = iee_tests::connect_retrying(|| connect(again.endpoint())).await;
    wait_until(
        Duration::from_secs(30),
        "the restarted iee-kpi counts every event",
        || {
            let channel = channel.clone();
            async move { (events_counted(&channel).await? >= expected).then_some(()) }
        },
    )
    .await;
    // A few more aggregation rounds (50 ms each) must not count anything again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(events_counted(&channel).await, Some(expected));
    let status = again.signal_and_wait("TERM").await;
    assert!(status.success(), "the restarted iee-kpi exits 0: {status}");
}

//! `Score` latency through gRPC with the profile fetched, for docs/performance.md. Fills 1,000
//! profiles through ingest, then sends `Score` requests one at a time, in two set-ups:
//!
//! - `standalone`: one `iee standalone` process (in memory); the profile is read in process.
//! - `distributed`: `iee standalone` on a private Redis serving ingest and profile, and a
//!   separate `iee-predict` process reading profiles from it over gRPC.
//!
//! ```text
//! cargo build --release --bins
//! cargo bench -p iee-predict --bench predict -- standalone|distributed
//! ```
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use iee_api::{
    ingest::{IngestRequest, TouchpointApi, TouchpointClient},
    pb::common::{Channel, CustomerRef, Event, Money},
    predict::{
        ChurnQuery, LifetimeValueQuery, PredictApi, PredictClient, PropensityQuery,
        SatisfactionQuery, ScoreRequest,
    },
};
use iee_test_support::{RedisServer, ServerProcess};

const CUSTOMERS: usize = 1_000;

fn event(i: usize, customer: usize) -> Event {
    Event {
        event_id: format!("e-{i}"),
        tenant_id: "bench".into(),
        customer_id: format!("c-{customer}"),
        r#type: if i.is_multiple_of(4) {
            "purchase"
        } else {
            "page_view"
        }
        .into(),
        channel: Channel::Web as i32,
        touchpoint: "home".into(),
        occurred_at: Some(SystemTime::now().into()),
        value: i.is_multiple_of(4).then(|| Money {
            amount_minor: 2_500,
            currency: "EUR".into(),
        }),
        ..Event::default()
    }
}

fn request(customer: usize, actions: usize) -> ScoreRequest {
    ScoreRequest {
        customer: Some(CustomerRef {
            tenant_id: "bench".into(),
            customer_id: format!("c-{customer}"),
            anonymous_id: String::new(),
        }),
        churn: Some(ChurnQuery {}),
        satisfaction: Some(SatisfactionQuery {}),
        lifetime_value: Some(LifetimeValueQuery { horizon: None }),
        propensity: Some(PropensityQuery {
            action_ids: (0..actions).map(|a| format!("action-{a}")).collect(),
            channel: Channel::Web as i32,
            sample: true,
            ..PropensityQuery::default()
        }),
        top_features: 3,
        ..ScoreRequest::default()
    }
}

async fn measure(ingest_at: &ServerProcess, predict_at: &ServerProcess, setup: &str) {
    let ingest = TouchpointClient::connect(ingest_at.endpoint())
        .await
        .unwrap();
    let predict = PredictClient::connect(predict_at.endpoint()).await.unwrap();
    let events: Vec<Event> = (0..CUSTOMERS * 10)
        .map(|i| event(i, i % CUSTOMERS))
        .collect();
    for chunk in events.chunks(1_000) {
        ingest
            .ingest(IngestRequest {
                events: chunk.to_vec(),
            })
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for actions in [1, 50] {
        // Warm-up: every profile once.
        for c in 0..CUSTOMERS {
            predict.score(request(c, actions)).await.unwrap();
        }
        let mut hist = Histogram::<u64>::new(3).unwrap();
        let started = Instant::now();
        let n = 5_000;
        for i in 0..n {
            let t = Instant::now();
            let scored = predict
                .score(request(i % CUSTOMERS, actions))
                .await
                .unwrap();
            hist.record(u64::try_from(t.elapsed().as_micros()).unwrap())
                .unwrap();
            assert_eq!(scored.propensities.len(), actions);
            assert!(scored.profile_version > 0);
        }
        println!(
            "{setup}: Score with {actions} candidate action(s), all four kinds, profile fetched, \
             one at a time: n={n} p50={:.3} ms p99={:.3} ms p99.9={:.3} ms ({:.0} req/s)",
            hist.value_at_quantile(0.5) as f64 / 1000.0,
            hist.value_at_quantile(0.99) as f64 / 1000.0,
            hist.value_at_quantile(0.999) as f64 / 1000.0,
            n as f64 / started.elapsed().as_secs_f64()
        );
    }
}

#[tokio::main]
async fn main() {
    let mode = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "standalone".to_owned());
    let shards = [("IEE_CLUSTER__SHARD_COUNT", "64")];
    match mode.as_str() {
        "standalone" => {
            let iee = ServerProcess::spawn(
                "iee",
                &[
                    "standalone",
                    "--listen",
                    "127.0.0.1:0",
                    "--metrics-listen",
                    "",
                ],
                &shards,
            );
            measure(&iee, &iee, "standalone").await;
            iee.signal_and_wait("TERM").await;
        }
        "distributed" => {
            let redis = RedisServer::start();
            let url = redis.url();
            let iee = ServerProcess::spawn(
                "iee",
                &[
                    "standalone",
                    "--listen",
                    "127.0.0.1:0",
                    "--metrics-listen",
                    "",
                    "--redis-url",
                    &url,
                ],
                &shards,
            );
            let seeds = format!("[\"{}\"]", iee.addr);
            let predict = ServerProcess::spawn(
                "iee-predict",
                &[
                    "--listen",
                    "127.0.0.1:0",
                    "--metrics-listen",
                    "",
                    "--redis-url",
                    &url,
                ],
                &[shards[0], ("IEE_PREDICT__PROFILE_SEEDS", &seeds)],
            );
            measure(&iee, &predict, "distributed").await;
            predict.signal_and_wait("TERM").await;
            iee.signal_and_wait("TERM").await;
        }
        other => panic!("unknown mode {other}: standalone|distributed"),
    }
}

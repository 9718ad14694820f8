//! Acknowledged means durable: every event acknowledged by an `iee-ingest` process is in Redis
//! after that process is killed with SIGKILL mid-load, and a restarted process answers the
//! retries DUPLICATE with the original offsets.

use std::{collections::HashMap, time::Duration};

use iee_api::ingest::{EventStatus, IngestRequest, TouchpointApi, TouchpointClient};
use iee_store::{EventLog, RedisConfig, RedisStore};
use iee_test_support::{RedisServer, ServerProcess};
use iee_tests::events_for;

/// `iee-ingest` on Redis.
fn spawn_ingest(redis_url: &str) -> ServerProcess {
    ServerProcess::spawn(
        "iee-ingest",
        &[
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "",
            "--redis-url",
            redis_url,
        ],
        &[],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_sigkill_of_the_ingest_process() {
    let redis = RedisServer::start();
    let ingest = spawn_ingest(&redis.url());
    let client = TouchpointClient::connect(ingest.endpoint()).await.unwrap();

    // Load from 4 concurrent senders; kill the process while they are sending.
    let mut senders = Vec::new();
    for s in 0..4 {
        let client = client.clone();
        senders.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for b in 0..1_000 {
                let request = IngestRequest {
                    events: events_for(&format!("k{s}-{b:04}"), 20),
                };
                match client.ingest(request).await {
                    Ok(response) => {
                        for r in response.results {
                            assert_eq!(r.status, EventStatus::Accepted as i32);
                            acked.push((r.event_id, r.shard, r.offset));
                        }
                    }
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    ingest.signal_and_wait("KILL").await;
    let mut acked = Vec::new();
    for sender in senders {
        acked.extend(sender.await.unwrap());
    }
    assert!(
        !acked.is_empty(),
        "some events were acknowledged before the kill"
    );
    assert!(acked.len() < 4 * 1_000 * 20, "the kill landed mid-load");

    // Every acknowledged event is in its shard's log, at its offset.
    let store = RedisStore::open(&RedisConfig {
        url: redis.url(),
        ..RedisConfig::default()
    })
    .unwrap();
    let mut by_shard: HashMap<u32, Vec<(String, String)>> = HashMap::new();
    for (event_id, shard, offset) in &acked {
        by_shard
            .entry(*shard)
            .or_default()
            .push((offset.clone(), event_id.clone()));
    }
    for (shard, expected) in &by_shard {
        let entries = store.read(*shard, None, 1_000_000).await.unwrap();
        let logged: HashMap<String, String> = entries
            .into_iter()
            .map(|e| {
                let record = <iee_api::pb::common::LogRecord as prost::Message>::decode(
                    e.payload.as_slice(),
                )
                .unwrap();
                (e.offset, record.event.unwrap().event_id)
            })
            .collect();
        for (offset, event_id) in expected {
            assert_eq!(
                logged.get(offset),
                Some(event_id),
                "shard {shard} lost {event_id}"
            );
        }
    }

    // A new process answers the retries of acknowledged events with their original offsets.
    let again = spawn_ingest(&redis.url());
    let client = TouchpointClient::connect(again.endpoint()).await.unwrap();
    let sample: Vec<_> = acked.iter().step_by(97).take(50).collect();
    let retry = client
        .ingest(IngestRequest {
            events: sample
                .iter()
                .map(|(id, _, _)| {
                    let customer = format!(
                        "c-{}",
                        id.rsplit('-').next().unwrap().parse::<usize>().unwrap() % 10
                    );
                    iee_tests::event(id, &customer)
                })
                .collect(),
        })
        .await
        .unwrap();
    for (result, (_, _, offset)) in retry.results.iter().zip(&sample) {
        assert_eq!(result.status, EventStatus::Duplicate as i32, "{result:?}");
        assert_eq!(&result.offset, offset);
    }
    let status = again.signal_and_wait("TERM").await;
    assert!(
        status.success(),
        "iee-ingest exits 0 on SIGTERM: {status:?}"
    );
}

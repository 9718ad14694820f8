//! `IngestStream`: per-batch acknowledgements in order, per-customer order in the log, in-band
//! batch errors, and backpressure that holds a fast sender back.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use iee_api::ingest::{IngestStreamRequest, IngestStreamResponse};
use iee_test_support::signal;
use iee_tests::{Backend, TestCluster, events_for};
use tokio::sync::mpsc;
use tokio_stream::{StreamExt, wrappers::ReceiverStream};

async fn stream_acks_batches_in_order_and_keeps_customer_order(backend: Backend) {
    let cluster = TestCluster::start(backend).await;
    let mut grpc = cluster.grpc().await;
    let batches: Vec<IngestStreamRequest> = (0..20)
        .map(|b| IngestStreamRequest {
            batch_id: b,
            events: events_for(&format!("s{b:02}"), 50),
        })
        .collect();
    let acks: Vec<IngestStreamResponse> = grpc
        .ingest_stream(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner()
        .map(|ack| ack.expect("acks arrive"))
        .collect()
        .await;
    let ids: Vec<u64> = acks.iter().map(|a| a.batch_id).collect();
    assert_eq!(ids, (0..20).collect::<Vec<_>>());
    assert!(acks.iter().all(|a| a.accepted == 50 && a.error.is_none()));

    // Per customer, log order equals send order (event ids sort in send order).
    let mut per_customer: HashMap<String, Vec<String>> = HashMap::new();
    let records = cluster.log_records().await;
    assert_eq!(records.len(), 1000);
    for (_, _, record) in records {
        let event = record.event.unwrap();
        per_customer
            .entry(event.customer_id)
            .or_default()
            .push(event.event_id);
    }
    for (customer, ids) in per_customer {
        let position = |id: &String| {
            let (batch, index) = id.split_once('-').unwrap();
            (batch.to_owned(), index.parse::<usize>().unwrap())
        };
        let keys: Vec<_> = ids.iter().map(position).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "customer {customer} out of order");
    }
}

async fn bad_batch_fails_in_band_and_the_stream_goes_on(backend: Backend) {
    let config = iee_ingest::IngestConfig {
        max_batch_events: 10,
        ..Default::default()
    };
    let cluster = TestCluster::start_with(backend, config).await;
    let mut grpc = cluster.grpc().await;
    let batches = vec![
        IngestStreamRequest {
            batch_id: 1,
            events: events_for("a", 5),
        },
        IngestStreamRequest {
            batch_id: 2,
            events: events_for("b", 11),
        },
        IngestStreamRequest {
            batch_id: 3,
            events: events_for("c", 5),
        },
    ];
    let acks: Vec<IngestStreamResponse> = grpc
        .ingest_stream(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner()
        .map(|ack| ack.unwrap())
        .collect()
        .await;
    assert_eq!(acks.len(), 3);
    assert_eq!(acks[0].accepted, 5);
    let error = acks[1]
        .error
        .as_ref()
        .expect("the oversized batch fails as a whole");
    assert_eq!(error.code, tonic::Code::InvalidArgument as i32);
    assert!(error.message.contains("events"), "{}", error.message);
    assert_eq!(acks[2].accepted, 5);
    assert_eq!(cluster.log_records().await.len(), 10);
}

async fn shutdown_acks_what_was_read_and_ends_the_stream_cleanly(backend: Backend) {
    let cluster = TestCluster::start(backend).await;
    let mut grpc = cluster.grpc().await;
    let (tx, rx) = mpsc::channel::<IngestStreamRequest>(8);
    let mut acks = grpc
        .ingest_stream(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    for b in 0..3u64 {
        tx.send(IngestStreamRequest {
            batch_id: b,
            events: events_for(&format!("sd{b}"), 10),
        })
        .await
        .unwrap();
        let ack = acks.next().await.unwrap().unwrap();
        assert_eq!((ack.batch_id, ack.accepted), (b, 10));
    }

    cluster.trigger_shutdown();
    // The sender is still open; the server must end the stream itself, cleanly (no error), and
    // not by having the connection cut at the drain deadline.
    let end = tokio::time::timeout(Duration::from_secs(30), acks.next())
        .await
        .expect("the stream ends");
    assert!(end.is_none(), "the stream ends without an error: {end:?}");
    assert_eq!(cluster.log_records().await.len(), 30);
    drop(tx);
}

crate::on_both_backends!(
    stream_acks_batches_in_order_and_keeps_customer_order,
    bad_batch_fails_in_band_and_the_stream_goes_on,
    shutdown_acks_what_was_read_and_ends_the_stream_cleanly,
);

fn gauge(text: &str, name: &str) -> i64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_backpressure_holds_a_fast_sender_while_the_log_stalls() {
    const BATCHES: usize = 80;
    let read_ahead = 4;
    let config = iee_ingest::IngestConfig {
        stream_read_ahead: read_ahead,
        ..Default::default()
    };
    let mut cluster = TestCluster::start_custom(Backend::Redis, config, 60_000).await;
    let mut grpc = cluster.grpc().await;
    let pid = cluster.redis_mut().pid().unwrap();

    signal(pid, "STOP");
    // A sender that pushes as fast as the transport lets it; `pushed` counts what it handed off.
    let (tx, rx) = mpsc::channel::<IngestStreamRequest>(1);
    let pushed = Arc::new(AtomicUsize::new(0));
    let counter = pushed.clone();
    let sender = tokio::spawn(async move {
        for b in 0..BATCHES {
            let mut events = events_for(&format!("bp{b:03}"), 200);
            for e in &mut events {
                e.text = Some("x".repeat(400));
            }
            if tx
                .send(IngestStreamRequest {
                    batch_id: b as u64,
                    events,
                })
                .await
                .is_err()
            {
                return;
            }
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let mut acks = grpc
        .ingest_stream(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();

    // Let the sender run until it makes no more progress for a second.
    let mut last = usize::MAX;
    iee_test_support::wait_until(Duration::from_secs(20), "the sender to stall", || {
        let now = pushed.load(Ordering::SeqCst);
        let stalled = now == last;
        last = now;
        async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            stalled.then_some(())
        }
    })
    .await;
    let held_at = pushed.load(Ordering::SeqCst);
    let in_flight = gauge(
        &cluster.metrics.encode(),
        "iee_ingest_stream_batches_in_flight",
    );
    signal(pid, "CONT");

    assert!(
        held_at < BATCHES / 2,
        "the sender was held back, not buffered without bound: {held_at} of {BATCHES} handed off"
    );
    // One being appended, `read_ahead` queued, one in the reader's hand.
    assert!(
        (1..=(read_ahead as i64 + 2)).contains(&in_flight),
        "server-side batches in flight: {in_flight}"
    );

    let mut next = 0u64;
    while let Some(ack) = tokio::time::timeout(Duration::from_secs(60), acks.next())
        .await
        .expect("acks keep coming once the log is back")
    {
        let ack = ack.unwrap();
        assert_eq!(ack.batch_id, next);
        assert!(ack.error.is_none(), "{:?}", ack.error);
        assert_eq!(ack.accepted, 200);
        next += 1;
    }
    sender.await.unwrap();
    assert_eq!(next as usize, BATCHES, "every batch acknowledged");
    assert_eq!(cluster.log_records().await.len(), BATCHES * 200);
}

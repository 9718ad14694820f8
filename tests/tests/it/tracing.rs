//! One trace from the client through ingest into the log: the server span continues the
//! caller's W3C trace, is exported over OTLP to a real (in-process) collector, and the log entry
//! carries the span's `traceparent` for the consumers that come later.

use iee_api::{
    ingest::{IngestRequest, touchpoint_service_client::TouchpointServiceClient},
    pb::common::LogRecord,
};
use iee_store::{EventLog, RedisConfig, RedisStore};
use iee_test_support::RedisServer;
use iee_tests::{OtlpCollector, SpanKind, spawn_standalone};
use prost::Message;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_span_joins_the_callers_trace_and_reaches_the_log() {
    let collector = OtlpCollector::start().await;
    let redis = RedisServer::start();
    let otlp = collector.endpoint();
    let iee = spawn_standalone(&[
        ("IEE_TELEMETRY__OTLP_ENDPOINT", &otlp),
        ("IEE_STORE__BACKEND", "redis"),
        ("IEE_STORE__REDIS__URL", &redis.url()),
    ]);

    let mut client = TouchpointServiceClient::connect(iee.endpoint())
        .await
        .unwrap();
    let mut request = tonic::Request::new(IngestRequest {
        events: iee_tests::events_for("traced", 3),
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-{CALLER_SPAN}-01").parse().unwrap(),
    );
    let response = client.ingest(request).await.unwrap().into_inner();
    assert_eq!(response.accepted, 3);

    // Shutdown flushes the exporter.
    let status = iee.signal_and_wait("TERM").await;
    assert!(status.success());
    let span = collector
        .wait_for("the ingest span", |s| s.name == "ingest.Ingest")
        .await;
    assert_eq!(span.kind, SpanKind::Server);
    assert_eq!(
        span.trace_id, TRACE_ID,
        "the server span continues the caller's trace"
    );
    assert_eq!(
        span.parent_span_id, CALLER_SPAN,
        "with the caller's span as parent"
    );

    let store = RedisStore::open(&RedisConfig {
        url: redis.url(),
        ..RedisConfig::default()
    })
    .unwrap();
    let result = &response.results[0];
    let entries = store.read(result.shard, None, 100).await.unwrap();
    let entry = entries.iter().find(|e| e.offset == result.offset).unwrap();
    let record = LogRecord::decode(entry.payload.as_slice()).unwrap();
    assert!(
        record.traceparent.starts_with(&format!("00-{TRACE_ID}-")),
        "log entries carry the trace: {}",
        record.traceparent
    );
}

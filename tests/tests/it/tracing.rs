//! One trace from the client through ingest into the log: the server span continues the
//! caller's W3C trace, is exported over OTLP to a real (in-process) collector, and the log entry
//! carries the span's `traceparent` for the consumers that come later.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use iee_api::{
    ingest::{IngestRequest, touchpoint_service_client::TouchpointServiceClient},
    pb::common::LogRecord,
};
use iee_store::{EventLog, RedisConfig, RedisStore};
use iee_test_support::{RedisServer, wait_until};
use iee_tests::spawn_standalone;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use prost::Message;

/// A received span: name, trace id, parent span id.
type ReceivedSpan = (String, Vec<u8>, Vec<u8>);

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push((span.name, span.trace_id, span.parent_span_id));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_span_joins_the_callers_trace_and_reaches_the_log() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    let service = TraceServiceServer::new(collector.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });

    let redis = RedisServer::start();
    let otlp = format!("http://{collector_addr}");
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
    let spans = collector.spans.clone();
    let (name, trace_id, parent) = wait_until(Duration::from_secs(10), "the ingest span", || {
        let found = spans
            .lock()
            .unwrap()
            .iter()
            .find(|(name, _, _)| name == "ingest.Ingest")
            .cloned();
        async move { found }
    })
    .await;
    assert_eq!(name, "ingest.Ingest");
    assert_eq!(
        hex(&trace_id),
        TRACE_ID,
        "the server span continues the caller's trace"
    );
    assert_eq!(
        hex(&parent),
        CALLER_SPAN,
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

//! `OtlpCollector`: a real OTLP/gRPC trace collector in the test process, keeping every exported
//! span (service, trace, parent, kind, links, attributes) for the trace tests to query.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use iee_test_support::wait_until;
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, KeyValue, any_value::Value},
};

/// The kind of an exported span (server, client, internal, …).
pub use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

/// One exported span, ids in lowercase hex.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedSpan {
    /// `service.name` of the process that exported it.
    pub service: String,
    /// The span name (`decide.Decide`, `profile.apply`, …).
    pub name: String,
    /// Server, client, internal, …
    pub kind: SpanKind,
    /// Its trace id.
    pub trace_id: String,
    /// Its span id.
    pub span_id: String,
    /// Its parent's span id; empty for a root span.
    pub parent_span_id: String,
    /// The contexts it links to: (trace id, span id).
    pub links: Vec<(String, String)>,
    /// Its attributes, values as text.
    pub attributes: Vec<(String, String)>,
    /// Attribute values of its events and links, as text (for checks that no personal data
    /// left the process).
    pub other_values: Vec<String>,
}

impl ExportedSpan {
    /// The value of attribute `key`, if set.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the span links to the span `span_id` of trace `trace_id`.
    pub fn links_to(&self, trace_id: &str, span_id: &str) -> bool {
        self.links
            .iter()
            .any(|(t, s)| t == trace_id && s == span_id)
    }

    /// Every attribute value it carries: its own, its events' and its links'.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.attributes
            .iter()
            .map(|(_, v)| v.as_str())
            .chain(self.other_values.iter().map(String::as_str))
    }
}

/// Lowercase hex of an id.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn pairs(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

#[derive(Clone, Default)]
struct Sink {
    spans: Arc<Mutex<Vec<ExportedSpan>>>,
}

impl Sink {
    /// The spans stay consistent under a panic (each export is one `extend`).
    fn lock(&self) -> MutexGuard<'_, Vec<ExportedSpan>> {
        self.spans.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                .map(|kv| text(kv.value.as_ref()))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    let other_values = span
                        .events
                        .iter()
                        .flat_map(|e| pairs(&e.attributes))
                        .chain(span.links.iter().flat_map(|l| pairs(&l.attributes)))
                        .map(|(_, v)| v)
                        .collect();
                    received.push(ExportedSpan {
                        service: service.clone(),
                        kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        links: span
                            .links
                            .iter()
                            .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                            .collect(),
                        attributes: pairs(&span.attributes),
                        other_values,
                        name: span.name,
                    });
                }
            }
        }
        self.lock().extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP/gRPC trace collector on a free loopback port; stops when dropped.
pub struct OtlpCollector {
    sink: Sink,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for OtlpCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpCollector")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for OtlpCollector {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// How long the collector waits for a span to be exported.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(30);

impl OtlpCollector {
    /// Starts the collector.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the collector");
        let addr = listener.local_addr().expect("the collector's address");
        let sink = Sink::default();
        let service = TraceServiceServer::new(sink.clone());
        let server = tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            if let Err(err) = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
            {
                eprintln!("otlp collector stopped: {err}");
            }
        });
        Self { sink, addr, server }
    }

    /// Its endpoint, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The standard variables that make a service export every span here within ~100 ms.
    pub fn otel_envs(&self) -> Vec<(String, String)> {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), self.endpoint()),
            ("OTEL_TRACES_SAMPLER".into(), "always_on".into()),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
        ]
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ExportedSpan> {
        self.sink.lock().clone()
    }

    /// Waits until a span matching `what` is exported and returns it; fails the test after
    /// 30 s, naming `description`.
    pub async fn wait_for(
        &self,
        description: &str,
        what: impl Fn(&ExportedSpan) -> bool,
    ) -> ExportedSpan {
        wait_until(EXPORT_TIMEOUT, description, || {
            let found = self.sink.lock().iter().find(|s| what(s)).cloned();
            async move { found }
        })
        .await
    }

    /// Waits for a span named `name` of kind `kind` in trace `trace_id`.
    pub async fn wait_in_trace(&self, name: &str, kind: SpanKind, trace_id: &str) -> ExportedSpan {
        self.wait_for(&format!("{name} ({kind:?}) in trace {trace_id}"), |s| {
            s.name == name && s.kind == kind && s.trace_id == trace_id
        })
        .await
    }

    /// Waits for a span named `name` that links to `cause` (an asynchronous hop: a log entry
    /// applied, a signal acted on, an outcome learned from).
    pub async fn wait_linked(&self, name: &str, cause: &ExportedSpan) -> ExportedSpan {
        let description = format!(
            "{name} linked to {} ({}/{})",
            cause.name, cause.trace_id, cause.span_id
        );
        self.wait_for(&description, |s| {
            s.name == name && s.links_to(&cause.trace_id, &cause.span_id)
        })
        .await
    }

    /// The chain of exported parents of `span`, nearest first, as far as it is known.
    pub fn ancestors(&self, span: &ExportedSpan) -> Vec<ExportedSpan> {
        let spans = self.spans();
        let mut chain: Vec<ExportedSpan> = Vec::new();
        let mut parent = span.parent_span_id.clone();
        while !parent.is_empty() && chain.len() < 64 {
            let Some(next) = spans
                .iter()
                .find(|s| s.trace_id == span.trace_id && s.span_id == parent)
            else {
                break;
            };
            parent = next.parent_span_id.clone();
            chain.push(next.clone());
        }
        chain
    }
}

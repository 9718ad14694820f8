//! W3C trace context across hops: server spans that continue the caller's trace from gRPC
//! metadata, links from a new trace to a context carried in a record, the `traceparent` to carry.
//!
//! Outgoing gRPC calls inject their context in `iee_api::trace_context` (the client side).

use std::collections::HashMap;

use opentelemetry::{
    propagation::{Extractor, TextMapPropagator},
    trace::TraceContextExt,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Reads propagation fields from gRPC metadata.
struct MetadataExtractor<'a>(&'a tonic::metadata::MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(key) => Some(key.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// The server span of one RPC, named `<service>.<rpc>`, child of the caller's trace when the
/// request carries a W3C `traceparent`.
pub fn rpc_span(
    service: &'static str,
    rpc: &'static str,
    metadata: &tonic::metadata::MetadataMap,
) -> tracing::Span {
    let span = tracing::info_span!(
        "rpc",
        otel.name = %format_args!("{service}.{rpc}"),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = rpc,
    );
    let parent = TraceContextPropagator::new().extract(&MetadataExtractor(metadata));
    // Without an OpenTelemetry layer (e.g. in some tests) there is nothing to attach to.
    let _ = span.set_parent(parent);
    span
}

/// Links `span` to the trace context of a W3C `traceparent` carried by a record (a log entry,
/// a signal): the span of an asynchronous hop starts its own trace and points back to the one
/// that caused it. Call it before the span is entered: parent-based samplers then follow the
/// linked context's sampling decision. An empty or malformed `traceparent` adds nothing.
pub fn add_link(span: &tracing::Span, traceparent: &str) {
    if let Some(remote) = remote_context(traceparent) {
        span.add_link(remote);
    }
}

/// A carrier holding only a `traceparent` (no map to allocate: this runs per applied record).
struct Traceparent<'a>(&'a str);

impl Extractor for Traceparent<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

/// The span context a W3C `traceparent` names, if it is valid.
fn remote_context(traceparent: &str) -> Option<opentelemetry::trace::SpanContext> {
    if traceparent.is_empty() {
        return None;
    }
    let cx = TraceContextPropagator::new().extract(&Traceparent(traceparent));
    let remote = cx.span().span_context().clone();
    remote.is_valid().then_some(remote)
}

/// Sets an attribute on the current span's OpenTelemetry span, for facts learned after the span
/// began (a decision id, the shard of a customer). Never pass personal data (customer ids).
pub fn set_current_attribute(key: &'static str, value: impl Into<opentelemetry::Value>) {
    tracing::Span::current().set_attribute(key, value);
}

/// The W3C `traceparent` of `span`, for records that asynchronous consumers link their spans
/// to. Empty when the span has no valid context (no OpenTelemetry layer installed).
pub fn traceparent_of(span: &tracing::Span) -> String {
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove("traceparent").unwrap_or_default()
}

/// The W3C `traceparent` of the current span; see [`traceparent_of`].
pub fn current_traceparent() -> String {
    traceparent_of(&tracing::Span::current())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TelemetryConfig, otel_env::TraceSettings, tracing_otel::otel_layer};
    use tracing_subscriber::prelude::*;

    const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn settings() -> TraceSettings {
        TraceSettings::resolve(&TelemetryConfig::default(), "test", &HashMap::new()).unwrap()
    }

    #[tokio::test]
    async fn rpc_span_continues_the_callers_trace() {
        let (layer, _guard) = otel_layer(&settings()).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        let _default = tracing::subscriber::set_default(subscriber);

        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert("traceparent", INCOMING.parse().unwrap());
        let span = rpc_span("ingest", "Ingest", &metadata);
        let traceparent = span.in_scope(current_traceparent);
        // Same trace, new span id, sampled.
        assert!(
            traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{traceparent}"
        );
        assert!(!traceparent.contains("00f067aa0ba902b7"), "{traceparent}");
        assert!(traceparent.ends_with("-01"), "{traceparent}");
    }

    #[tokio::test]
    async fn a_new_trace_starts_without_a_parent() {
        let (layer, _guard) = otel_layer(&settings()).unwrap();
        let _default = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
        let span = rpc_span("ingest", "Ingest", &tonic::metadata::MetadataMap::new());
        let traceparent = span.in_scope(current_traceparent);
        assert_eq!(traceparent.len(), 55, "{traceparent}");
    }

    #[tokio::test]
    async fn a_linked_span_starts_its_own_trace() {
        let (layer, _guard) = otel_layer(&settings()).unwrap();
        let _default = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
        let outer = tracing::info_span!("outer");
        let _entered = outer.enter();
        let span = tracing::info_span!(parent: None, "profile.apply");
        add_link(&span, INCOMING);
        let traceparent = traceparent_of(&span);
        assert_eq!(traceparent.len(), 55, "{traceparent}");
        assert!(
            !traceparent.contains("4bf92f3577b34da6a3ce929d0e0e4736"),
            "a link is not a parent: {traceparent}"
        );
        let outer_trace = &traceparent_of(&outer)[3..35];
        assert!(
            !traceparent.contains(outer_trace),
            "a root span, not a child of the entered span: {traceparent}"
        );
    }

    #[test]
    fn only_valid_traceparents_make_links() {
        assert!(remote_context(INCOMING).is_some());
        assert!(remote_context("").is_none());
        assert!(remote_context("00-nothex-00f067aa0ba902b7-01").is_none());
        assert!(
            remote_context("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none()
        );
    }
}

//! OpenTelemetry: the span pipeline (OTLP export when configured), W3C trace-context
//! propagation from gRPC metadata, and the `traceparent` of the current span for log entries.

use std::collections::HashMap;

use opentelemetry::{
    global,
    propagation::{Extractor, TextMapPropagator},
    trace::TracerProvider as _,
};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{Sampler, SdkTracerProvider},
};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{Layer, registry::LookupSpan};

use crate::{TelemetryConfig, TelemetryError};

/// Flushes buffered spans when dropped (at the end of `main`).
#[derive(Debug)]
pub struct TracingGuard {
    provider: SdkTracerProvider,
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Err(err) = self.provider.shutdown() {
            // Nothing left to report to but stderr: the subscriber is going away.
            eprintln!("span exporter shutdown: {err}");
        }
    }
}

/// The OpenTelemetry layer and the guard of its provider.
pub(crate) fn otel_layer<S>(
    config: &TelemetryConfig,
    service_name: &str,
) -> Result<(impl Layer<S> + use<S>, TracingGuard), TelemetryError>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    global::set_text_map_propagator(TraceContextPropagator::new());
    let ratio = f64::from(config.trace_sample_per_mille.min(1000)) / 1000.0;
    let mut builder = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        );
    if !config.otlp_endpoint.is_empty() {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(config.otlp_endpoint.clone())
            .build()
            .map_err(|e| TelemetryError::Otlp(e.to_string()))?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    let tracer = provider.tracer("iee");
    global::set_tracer_provider(provider.clone());
    Ok((
        tracing_opentelemetry::layer().with_tracer(tracer),
        TracingGuard { provider },
    ))
}

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

/// The W3C `traceparent` of the current span, for log entries that asynchronous consumers
/// link their spans to. Empty when there is no valid span context.
pub fn current_traceparent() -> String {
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut carrier);
    carrier.remove("traceparent").unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::prelude::*;

    #[tokio::test]
    async fn rpc_span_continues_the_callers_trace() {
        let config = TelemetryConfig::default();
        let (layer, _guard) = otel_layer(&config, "test").unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        let _default = tracing::subscriber::set_default(subscriber);

        let mut metadata = tonic::metadata::MetadataMap::new();
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        metadata.insert("traceparent", incoming.parse().unwrap());
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
        let (layer, _guard) = otel_layer(&TelemetryConfig::default(), "test").unwrap();
        let _default = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
        let span = rpc_span("ingest", "Ingest", &tonic::metadata::MetadataMap::new());
        let traceparent = span.in_scope(current_traceparent);
        assert_eq!(traceparent.len(), 55, "{traceparent}");
    }
}

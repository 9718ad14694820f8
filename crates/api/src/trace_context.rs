//! W3C trace context on outgoing gRPC calls: every remote call of the clients in this crate runs
//! in a client span `<service>.<rpc>` whose context travels in the request's `traceparent`.
//!
//! The server side (continuing the trace in a server span) is `iee_telemetry::rpc_span`; this
//! crate depends on nothing of ours, so the client side lives here, next to the clients.

use std::future::Future;

use opentelemetry::propagation::Injector;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Writes propagation fields (`traceparent`, `tracestate`) into gRPC metadata.
struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // Propagators write lowercase ASCII keys and values; anything else is dropped.
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// Writes the W3C trace context of `span` into `metadata` with the process's text-map
/// propagator (W3C trace context once `iee_telemetry::init_telemetry` ran). Writes nothing when
/// the span has no valid context, e.g. when no OpenTelemetry layer is installed.
pub fn inject_span_context(span: &tracing::Span, metadata: &mut MetadataMap) {
    let cx = span.context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&cx, &mut MetadataInjector(metadata));
    });
}

/// Writes the W3C trace context of the current span into outgoing `metadata`, for calls made
/// with a generated client directly rather than through the clients of this crate.
pub fn inject_context(metadata: &mut MetadataMap) {
    inject_span_context(&tracing::Span::current(), metadata);
}

/// The client span of one outgoing call, named `<service>.<rpc>` (the same name as the server
/// span it becomes the parent of), of kind client.
pub fn client_span(service: &'static str, rpc: &'static str) -> tracing::Span {
    tracing::info_span!(
        "rpc.client",
        otel.name = %format_args!("{service}.{rpc}"),
        otel.kind = "client",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = rpc,
        otel.status_code = tracing::field::Empty,
        rpc.grpc.status_code = tracing::field::Empty,
    )
}

/// Marks a span of [`client_span`] as failed with `code`.
pub(crate) fn record_error(span: &tracing::Span, code: tonic::Code) {
    span.record("otel.status_code", "ERROR");
    span.record("rpc.grpc.status_code", code as i32);
}

/// Runs one unary call in its client span: `send` gets the request with the span's context and
/// the process's bearer token ([`crate::credentials`]) in its metadata; a failed call marks the
/// span as failed.
pub(crate) async fn traced<Req, Resp, Fut>(
    service: &'static str,
    rpc: &'static str,
    message: Req,
    send: impl FnOnce(tonic::Request<Req>) -> Fut,
) -> Result<Resp, tonic::Status>
where
    Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
{
    let span = client_span(service, rpc);
    let mut request = tonic::Request::new(message);
    inject_span_context(&span, request.metadata_mut());
    crate::credentials::attach(request.metadata_mut());
    let result = send(request).instrument(span.clone()).await;
    if let Err(status) = &result {
        record_error(&span, status.code());
    }
    result.map(tonic::Response::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_injected_without_a_valid_span_context() {
        // No subscriber: the span is disabled and has no OpenTelemetry context.
        let mut metadata = MetadataMap::new();
        inject_span_context(&client_span("profile", "GetProfile"), &mut metadata);
        assert!(metadata.get("traceparent").is_none());
    }

    #[test]
    fn injected_fields_become_metadata() {
        let mut metadata = MetadataMap::new();
        let mut injector = MetadataInjector(&mut metadata);
        injector.set(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        );
        injector.set("bad key", "x".into());
        assert_eq!(
            metadata.get("traceparent").unwrap(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(metadata.len(), 1);
    }
}

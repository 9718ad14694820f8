//! The OpenTelemetry span pipeline: sampler, `service.name`, OTLP export when an endpoint is
//! configured, and the W3C trace-context propagator; built from resolved [`TraceSettings`].

use opentelemetry::{
    Context, KeyValue, global,
    trace::{Link, SpanKind, TraceContextExt, TraceId, TraceState, TracerProvider as _},
};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{Sampler, SamplingDecision, SamplingResult, SdkTracerProvider, ShouldSample},
};
use tracing_subscriber::{Layer, registry::LookupSpan};

use crate::{
    TelemetryError,
    otel_env::{SamplerSpec, TraceSettings},
};

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
    settings: &TraceSettings,
) -> Result<(impl Layer<S> + use<S>, TracingGuard), TelemetryError>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    global::set_text_map_propagator(TraceContextPropagator::new());
    let mut builder = SdkTracerProvider::builder()
        .with_sampler(sampler(&settings.sampler))
        .with_resource(
            Resource::builder()
                .with_service_name(settings.service_name.clone())
                .build(),
        );
    if let Some(endpoint) = &settings.endpoint {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
            .map_err(|e| TelemetryError::Otlp {
                source_name: settings.endpoint_source,
                reason: e.to_string(),
            })?;
        // The batch processor reads the `OTEL_BSP_*` variables itself.
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

/// The SDK sampler of a [`SamplerSpec`].
fn sampler(spec: &SamplerSpec) -> Box<dyn ShouldSample> {
    match spec {
        SamplerSpec::AlwaysOn => Box::new(Sampler::AlwaysOn),
        SamplerSpec::AlwaysOff => Box::new(Sampler::AlwaysOff),
        SamplerSpec::TraceIdRatio(ratio) => Box::new(Sampler::TraceIdRatioBased(*ratio)),
        SamplerSpec::ParentBased(root) => {
            Box::new(FollowLinks(Sampler::ParentBased(sampler(root))))
        }
    }
}

/// A parent-based sampler that also treats the links of a root span like a parent: the span of
/// an asynchronous hop (a log entry applied, a signal acted on) is sampled when the trace it
/// links to was, so a sampled request stays visible across the loop at any sampling ratio.
#[derive(Debug, Clone)]
struct FollowLinks(Sampler);

impl ShouldSample for FollowLinks {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let has_parent = parent_context.is_some_and(|cx| cx.has_active_span());
        if !has_parent && !links.is_empty() {
            let sampled = links.iter().any(|link| link.span_context.is_sampled());
            return SamplingResult {
                decision: if sampled {
                    SamplingDecision::RecordAndSample
                } else {
                    SamplingDecision::Drop
                },
                attributes: Vec::new(),
                trace_state: TraceState::default(),
            };
        }
        self.0
            .should_sample(parent_context, trace_id, name, span_kind, attributes, links)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tracing_subscriber::prelude::*;

    use super::*;
    use crate::{TelemetryConfig, add_link, traceparent_of};

    const SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const NOT_SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

    fn with_sampler(name: &str, arg: &str) -> TraceSettings {
        let vars = HashMap::from([
            ("OTEL_TRACES_SAMPLER".to_owned(), name.to_owned()),
            ("OTEL_TRACES_SAMPLER_ARG".to_owned(), arg.to_owned()),
        ]);
        TraceSettings::resolve(&TelemetryConfig::default(), "test", &vars).unwrap()
    }

    /// The sampled flag of a new root span linked to `link`.
    fn linked_root_is_sampled(settings: &TraceSettings, link: &str) -> bool {
        let (layer, _guard) = otel_layer(settings).unwrap();
        let _default = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
        let span = tracing::info_span!(parent: None, "hop");
        add_link(&span, link);
        traceparent_of(&span).ends_with("-01")
    }

    #[tokio::test]
    async fn parent_based_samplers_follow_the_linked_trace() {
        let never_new = with_sampler("parentbased_always_off", "");
        assert!(linked_root_is_sampled(&never_new, SAMPLED));
        let always_new = with_sampler("parentbased_always_on", "");
        assert!(!linked_root_is_sampled(&always_new, NOT_SAMPLED));
    }

    #[tokio::test]
    async fn other_samplers_ignore_links() {
        assert!(!linked_root_is_sampled(
            &with_sampler("always_off", ""),
            SAMPLED
        ));
        assert!(linked_root_is_sampled(
            &with_sampler("always_on", ""),
            NOT_SAMPLED
        ));
        assert!(!linked_root_is_sampled(
            &with_sampler("traceidratio", "0"),
            SAMPLED
        ));
    }
}

//! Telemetry written once for every service: the tracing subscriber (text or JSON logs, OTLP
//! spans configured by `telemetry.*` and the standard `OTEL_*` variables), W3C trace-context
//! propagation (server spans, links across asynchronous hops), the Prometheus registry with its
//! `/metrics` endpoint, and RED metrics per RPC.
//!
//! Endpoint precedence: `telemetry.otlp_endpoint` when set, else
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT`, else no export.
//! Sampler: `OTEL_TRACES_SAMPLER` (+ `_ARG`) when set, else parent-based
//! `telemetry.trace_sample_per_mille`. Service name: `OTEL_SERVICE_NAME`, else the binary's.
//! `OTEL_SDK_DISABLED=true` wins over everything. The full rules are in `otel_env.rs`.
//!
//! Outgoing calls inject their context in `iee_api::trace_context` (the API crate depends on
//! nothing of ours, so its clients do it themselves).

mod logging;
mod metrics;
mod otel_env;
mod propagation;
mod rpc;
mod tracing_otel;

pub use logging::{LogFormat, TelemetryConfig, TelemetryError, init_telemetry};
pub use metrics::{MetricsRegistry, serve_metrics};
pub use propagation::{
    add_link, current_traceparent, rpc_span, set_current_attribute, traceparent_of,
};
pub use rpc::{RpcMetrics, RpcTimer};
pub use tracing_otel::TracingGuard;

/// Re-exported so services declare metrics with the same crate version.
pub use prometheus_client;

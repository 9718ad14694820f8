//! Telemetry written once for every service: the tracing subscriber (text or JSON logs, OTLP
//! spans with W3C trace-context propagation), the Prometheus registry with its `/metrics`
//! endpoint, and RED metrics per RPC.

mod logging;
mod metrics;
mod rpc;
mod tracing_otel;

pub use logging::{LogFormat, TelemetryConfig, TelemetryError, init_telemetry};
pub use metrics::{MetricsRegistry, serve_metrics};
pub use rpc::{RpcMetrics, RpcTimer};
pub use tracing_otel::{TracingGuard, current_traceparent, rpc_span};

/// Re-exported so services declare metrics with the same crate version.
pub use prometheus_client;

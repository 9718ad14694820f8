//! Telemetry written once for every service: the tracing subscriber (text or JSON logs), the
//! Prometheus registry with its `/metrics` endpoint, and RED metrics per RPC.

mod logging;
mod metrics;
mod rpc;

pub use logging::{LogFormat, TelemetryConfig, TelemetryError, init_logging};
pub use metrics::{MetricsRegistry, serve_metrics};
pub use rpc::{RpcMetrics, RpcTimer};

/// Re-exported so services declare metrics with the same crate version.
pub use prometheus_client;

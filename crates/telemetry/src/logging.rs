//! The tracing subscriber: structured logs to stderr (text for people, JSON for collectors) and
//! spans exported over OTLP when an endpoint is configured (here or in `OTEL_*` variables).

use serde::{Deserialize, Serialize};
use tracing_subscriber::{EnvFilter, filter::LevelFilter, fmt, prelude::*};

use crate::{
    otel_env::TraceSettings,
    tracing_otel::{TracingGuard, otel_layer},
};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Telemetry settings of a binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Log filter in `RUST_LOG` syntax; `RUST_LOG` itself wins when set.
    pub log_filter: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Address of the Prometheus `/metrics` endpoint; empty disables it.
    pub metrics_listen: String,
    /// OTLP/gRPC endpoint spans are exported to (`http://collector:4317`); empty: the one of
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`, else none. Set
    /// here, it wins over those variables. Trace context is propagated (W3C `traceparent`)
    /// either way.
    pub otlp_endpoint: String,
    /// Share of new traces that are sampled, in per mille (1000 = all). A sampled parent's
    /// decision is always followed, and so is a linked trace's for the span of an asynchronous
    /// hop. `OTEL_TRACES_SAMPLER`, when set, replaces this sampler.
    pub trace_sample_per_mille: u32,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_filter: "info".to_owned(),
            log_format: LogFormat::Text,
            metrics_listen: "127.0.0.1:9464".to_owned(),
            otlp_endpoint: String::new(),
            trace_sample_per_mille: 1000,
        }
    }
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log filter does not parse.
    #[error("invalid `telemetry.log_filter`: {0}")]
    Filter(String),
    /// The OTLP exporter could not be set up.
    #[error("invalid `{source_name}`: {reason}")]
    Otlp {
        /// Where the endpoint came from: `telemetry.otlp_endpoint` or an `OTEL_*` variable.
        source_name: &'static str,
        /// Why the exporter refused it.
        reason: String,
    },
    /// A standard `OTEL_*` variable has a value that cannot be honoured.
    #[error("invalid `{var}`: {reason}")]
    Env {
        /// The variable.
        var: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// The metrics endpoint could not bind.
    #[error("cannot bind `telemetry.metrics_listen` {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Installs the global tracing subscriber: logs, plus OpenTelemetry spans for `service_name`
/// (unless `OTEL_SERVICE_NAME` names another), configured by `config` and the standard `OTEL_*`
/// variables (precedence: `telemetry.otlp_endpoint` over the endpoint variables, the sampler
/// variables over `telemetry.trace_sample_per_mille`, `OTEL_SDK_DISABLED=true` over all).
/// Must run inside a tokio runtime (the OTLP exporter uses it). Keep the guard: dropping it
/// flushes the spans still buffered. Calling this twice keeps the first subscriber, so tests and
/// the standalone binary may both call it.
pub fn init_telemetry(
    config: &TelemetryConfig,
    service_name: &str,
) -> Result<TracingGuard, TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => EnvFilter::try_new(env),
        _ => EnvFilter::try_new(&config.log_filter),
    }
    .map_err(|e| TelemetryError::Filter(e.to_string()))?;
    let settings = TraceSettings::from_env(config, service_name)?;
    let (otel, guard) = otel_layer(&settings)?;
    // Per-layer filters: the log filter must not hide the RPC spans from OpenTelemetry.
    let fmt_layer = match config.log_format {
        LogFormat::Text => fmt::layer().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let result = tracing_subscriber::registry()
        .with(otel.with_filter(LevelFilter::INFO))
        .with(fmt_layer.with_filter(filter))
        .try_init();
    // An already-installed subscriber is fine: the first one wins.
    let _ = result;
    Ok(guard)
}

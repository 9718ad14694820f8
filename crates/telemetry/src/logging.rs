//! The tracing subscriber: structured logs to stderr, text for people or JSON for collectors.

use serde::{Deserialize, Serialize};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

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
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_filter: "info".to_owned(),
            log_format: LogFormat::Text,
            metrics_listen: "127.0.0.1:9090".to_owned(),
        }
    }
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log filter does not parse.
    #[error("invalid `telemetry.log_filter`: {0}")]
    Filter(String),
    /// The metrics endpoint could not bind.
    #[error("cannot bind `telemetry.metrics_listen` {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Installs the global tracing subscriber. Calling it twice is harmless (the second call keeps
/// the first subscriber), so tests and the standalone binary can both call it.
pub fn init_logging(config: &TelemetryConfig) -> Result<(), TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => EnvFilter::try_new(env),
        _ => EnvFilter::try_new(&config.log_filter),
    }
    .map_err(|e| TelemetryError::Filter(e.to_string()))?;
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.log_format {
        LogFormat::Text => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // An already-installed subscriber is fine: the first one wins.
    let _ = result;
    Ok(())
}

//! One Prometheus registry per process and the HTTP endpoint that exposes it.

use std::sync::{Arc, Mutex};

use axum::{Router, http::header, response::IntoResponse, routing::get};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio::net::TcpListener;

use crate::TelemetryError;

/// A shared registry: services register their metrics at build time, the endpoint encodes them.
#[derive(Clone, Default)]
pub struct MetricsRegistry {
    inner: Arc<Mutex<Registry>>,
}

impl std::fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsRegistry")
    }
}

impl MetricsRegistry {
    /// Registers a metric under `name` (without the `_total` suffix for counters, which the
    /// encoder adds).
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .register(name, help, metric);
    }

    /// The registry in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let registry = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}

/// Binds `addr` and serves `GET /metrics` until `shutdown` resolves. Returns the bound address.
pub async fn serve_metrics(
    addr: &str,
    registry: MetricsRegistry,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<std::net::SocketAddr, TelemetryError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| TelemetryError::Bind {
            addr: addr.to_owned(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|source| TelemetryError::Bind {
            addr: addr.to_owned(),
            source,
        })?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    registry.encode(),
                )
                    .into_response()
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(error = %err, "metrics endpoint stopped");
        }
    });
    Ok(local)
}

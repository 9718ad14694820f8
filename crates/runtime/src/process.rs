//! What every server binary does around its nodes: the metrics endpoint, and serving until a
//! signal starts the shutdown sequence.

use std::net::SocketAddr;

use iee_telemetry::{MetricsRegistry, TelemetryError};

use crate::{GrpcServer, RuntimeError, Shutdown, wait_for_signal};

/// Serves `registry` on `listen` (`/metrics`) until `shutdown`; nothing when `listen` is empty.
/// Returns the bound address.
pub async fn serve_metrics_until(
    listen: &str,
    registry: MetricsRegistry,
    shutdown: &Shutdown,
) -> Result<Option<SocketAddr>, TelemetryError> {
    if listen.is_empty() {
        return Ok(None);
    }
    let stop = shutdown.clone();
    let addr = iee_telemetry::serve_metrics(listen, registry, async move {
        stop.wait().await;
    })
    .await?;
    tracing::info!(%addr, "metrics endpoint listening");
    Ok(Some(addr))
}

/// Serves `server` until SIGTERM or SIGINT triggers `shutdown` (or something else does), then
/// runs its shutdown sequence: not-serving, grace, drain.
pub async fn serve_until_signal(
    server: GrpcServer,
    shutdown: Shutdown,
) -> Result<(), RuntimeError> {
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        let signal = wait_for_signal().await;
        tracing::info!(signal, "shutting down");
        trigger.trigger();
    });
    server.serve(shutdown).await
}

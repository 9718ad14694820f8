//! The server runtime every IEE binary shares: a gRPC server with `grpc.health.v1` and
//! reflection, Unix signal handling, and graceful shutdown (not-serving, drain, exit).

mod admission;
mod auth;
mod background;
mod client;
mod limits;
mod process;
mod server;
mod shutdown;
mod tls;
mod unary;

pub use admission::{Admission, AdmissionMetrics, MAX_HOLD, admit, authenticated, hold_refusal};
pub use auth::{AuthConfig, AuthConfigError, Authenticator, Principal, TenantToken, token_sha256};
pub use background::Background;
pub use client::ClientConfig;
pub use limits::{LimitsConfig, Refusal, TenantLimiter, TenantLimits};
pub use process::{serve_metrics_until, serve_until_signal};
pub use server::{GrpcServer, ReadinessProbe, RuntimeError, ServerConfig};
pub use shutdown::{Shutdown, wait_for_signal};
pub use tls::{ServerTlsConfig, TlsStats};
pub use unary::{INTERNAL_DETAILS_LOGGED, outgoing_status, serve_unary};

/// A name for this process among its replicas when none is configured: the host name (the pod
/// name on Kubernetes) and the listening port, e.g. `profile-0-50051`.
pub fn instance_name(fallback_host: &str, port: u16) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| fallback_host.to_owned());
    format!("{host}-{port}")
}

//! The gRPC server builder: services plus health and reflection on one listener, and the
//! shutdown sequence (NOT_SERVING → grace period → stop accepting → drain with a deadline).

use std::{
    convert::Infallible, future::Future, net::SocketAddr, pin::Pin, sync::Arc, time::Duration,
};

use serde::{Deserialize, Serialize};
use tonic::{
    body::Body,
    codegen::{Service, http},
    server::NamedService,
    service::RoutesBuilder,
};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::tls::{Listener, ServerTlsConfig, TlsStats};

use crate::{
    Shutdown,
    admission::{self, AdmissionMetrics},
    auth::{AuthConfig, AuthConfigError, Authenticator},
    limits::{LimitsConfig, TenantLimiter},
};

/// Listener and shutdown settings of a gRPC server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on (`host:port`; port 0 picks a free one).
    pub listen: String,
    /// After shutdown begins, how long health reports NOT_SERVING while requests are still
    /// served, so load balancers stop sending new work (Kubernetes: a few seconds).
    pub shutdown_grace_ms: u64,
    /// How long in-flight requests and streams may take to finish once the listener is closed.
    pub drain_timeout_ms: u64,
    /// How often readiness probes run; a service whose probe fails reports NOT_SERVING.
    pub readiness_interval_ms: u64,
    /// TLS or mutual TLS (off by default: plaintext); see docs/tls.md.
    pub tls: ServerTlsConfig,
    /// A second listener (`host:port`), plaintext, serving only `grpc.health.v1`: for probes
    /// that cannot speak TLS, such as Kubernetes' gRPC probes. Empty: none.
    pub health_listen: String,
    /// Bearer-token authentication of callers (off by default).
    pub auth: AuthConfig,
    /// Per-tenant rate and request size limits (none by default).
    pub limits: LimitsConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50051".to_owned(),
            shutdown_grace_ms: 0,
            drain_timeout_ms: 10_000,
            readiness_interval_ms: 1_000,
            tls: ServerTlsConfig::default(),
            health_listen: String::new(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The listen address could not be bound.
    #[error("cannot listen on `{field}` {addr}: {source}")]
    Bind {
        /// The setting: `server.listen` or `server.health_listen`.
        field: &'static str,
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The transport failed while serving.
    #[error("grpc server failed: {0}")]
    Serve(String),
    /// Reflection could not be built from the descriptor sets.
    #[error("reflection setup failed: {0}")]
    Reflection(String),
    /// The TLS settings or certificate files cannot be used.
    #[error("tls: {0}")]
    Tls(#[from] iee_api::transport::TransportError),
    /// The authentication settings cannot be used.
    #[error(transparent)]
    Auth(#[from] AuthConfigError),
    /// The settings of outgoing calls cannot be used.
    #[error("invalid `{field}`: {reason}")]
    Client {
        /// The setting.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// Answers whether a service can do its work now (e.g. its store answers).
pub type ReadinessProbe = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// A gRPC server under construction: add services, then [`GrpcServer::serve`].
pub struct GrpcServer {
    health_only: Option<(tokio::net::TcpListener, SocketAddr, HealthService)>,
    incoming: Listener,
    local_addr: SocketAddr,
    routes: RoutesBuilder,
    health: HealthReporter,
    names: Vec<&'static str>,
    probes: Vec<(&'static str, ReadinessProbe)>,
    config: ServerConfig,
    auth: Option<Arc<Authenticator>>,
    limits: Arc<TenantLimiter>,
    admission_metrics: AdmissionMetrics,
}

impl std::fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServer")
            .field("local_addr", &self.local_addr)
            .field("services", &self.names)
            .finish()
    }
}

impl GrpcServer {
    /// Binds the listener now, so the caller can print or publish the address before serving.
    pub async fn bind(config: &ServerConfig) -> Result<Self, RuntimeError> {
        let auth = Authenticator::from_config(&config.auth)?.map(Arc::new);
        let limits = Arc::new(TenantLimiter::new(&config.limits));
        let bind_err = |source| RuntimeError::Bind {
            field: "server.listen",
            addr: config.listen.clone(),
            source,
        };
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        let incoming = Listener::new(listener, &config.tls)?;
        let (health, health_service) = tonic_health::server::health_reporter();
        // Liveness and startup probes (charts/iee) ask for the health service itself: SERVING
        // while the process answers, untouched by readiness probes and by shutdown.
        health
            .set_service_status("grpc.health.v1.Health", ServingStatus::Serving)
            .await;
        let health_only = if config.health_listen.is_empty() {
            None
        } else {
            let bind_err = |source| RuntimeError::Bind {
                field: "server.health_listen",
                addr: config.health_listen.clone(),
                source,
            };
            let listener = tokio::net::TcpListener::bind(&config.health_listen)
                .await
                .map_err(bind_err)?;
            let addr = listener.local_addr().map_err(bind_err)?;
            let service = tonic_health::pb::health_server::HealthServer::new(
                tonic_health::server::HealthService::from_health_reporter(health.clone()),
            );
            Some((listener, addr, service))
        };
        let mut routes = RoutesBuilder::default();
        routes.add_service(health_service);
        Ok(Self {
            health_only,
            incoming,
            local_addr,
            routes,
            health,
            names: Vec::new(),
            probes: Vec::new(),
            config: config.clone(),
            auth,
            limits,
            admission_metrics: AdmissionMetrics::default(),
        })
    }

    /// Registers the server's own metrics (admission refusals; TLS reloads and failed
    /// handshakes) in `registry`.
    pub fn register_metrics(&self, registry: &iee_telemetry::MetricsRegistry) {
        self.admission_metrics.register(registry);
        self.incoming.register_metrics(registry);
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound address of the health-only listener (`server.health_listen`), if any.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_only.as_ref().map(|(_, addr, _)| *addr)
    }

    /// The TLS counters (reloads, failed handshakes), when TLS is configured.
    pub fn tls_stats(&self) -> Option<Arc<TlsStats>> {
        self.incoming.tls_stats()
    }

    /// Adds a tonic service; its health status follows the server's lifecycle.
    pub fn add_service<S>(&mut self, service: S) -> &mut Self
    where
        S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes.add_service(service);
        self
    }

    /// Ties the health status of `service` (and the overall status, `""`) to `probe`, run every
    /// `readiness_interval_ms` while serving.
    pub fn add_readiness_probe(
        &mut self,
        service: &'static str,
        probe: ReadinessProbe,
    ) -> &mut Self {
        self.probes.push((service, probe));
        self
    }

    /// The health reporter, for services that change their status while running.
    pub fn health(&self) -> HealthReporter {
        self.health.clone()
    }

    /// Serves until `shutdown` triggers, then: every service NOT_SERVING, wait the grace
    /// period, close the listener, and give in-flight calls `drain_timeout_ms` to finish.
    pub async fn serve(mut self, shutdown: Shutdown) -> Result<(), RuntimeError> {
        // Both reflection versions: older clients (and some grpcurl builds) only speak v1alpha.
        // Only the services this server runs are listed (the descriptor set holds all five).
        let reflection = || {
            let mut builder = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(iee_api::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .with_service_name("grpc.health.v1.Health");
            for name in &self.names {
                builder = builder.with_service_name(*name);
            }
            builder
        };
        let v1 = reflection()
            .build_v1()
            .map_err(|e| RuntimeError::Reflection(e.to_string()))?;
        let v1alpha = reflection()
            .build_v1alpha()
            .map_err(|e| RuntimeError::Reflection(e.to_string()))?;
        self.routes.add_service(v1);
        self.routes.add_service(v1alpha);

        set_all(&self.health, &self.names, ServingStatus::Serving).await;
        tracing::info!(addr = %self.local_addr, services = ?self.names, "grpc server serving");
        let probing = (!self.probes.is_empty()).then(|| {
            tokio::spawn(run_probes(
                std::mem::take(&mut self.probes),
                self.health.clone(),
                Duration::from_millis(self.config.readiness_interval_ms.max(1)),
                shutdown.clone(),
            ))
        });

        let health = self.health.clone();
        let names = self.names.clone();
        let grace = Duration::from_millis(self.config.shutdown_grace_ms);
        let drain = Duration::from_millis(self.config.drain_timeout_ms);
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
        let stop = {
            let shutdown = shutdown.clone();
            async move {
                shutdown.wait().await;
                // The probe loop ends on shutdown; wait for it so it cannot report SERVING again.
                if let Some(probing) = probing {
                    let _ = probing.await;
                }
                set_all(&health, &names, ServingStatus::NotServing).await;
                tracing::info!(grace_ms = grace.as_millis(), "shutdown: not serving");
                tokio::time::sleep(grace).await;
                tracing::info!("shutdown: listener closed, draining");
                let _ = closed_tx.send(());
            }
        };
        let server = tonic::transport::Server::builder()
            .layer(tonic::service::InterceptorLayer::new(
                admission::interceptor(
                    self.auth.clone(),
                    self.limits.clone(),
                    self.admission_metrics.clone(),
                ),
            ))
            .add_routes(self.routes.routes())
            .serve_with_incoming_shutdown(self.incoming.start(shutdown.clone()), stop);
        // The health-only listener answers until the main server has finished: NOT_SERVING
        // through the grace period and the drain, like the main one.
        let health_only = self.health_only.take().map(|(listener, addr, service)| {
            tracing::info!(%addr, "health-only listener serving");
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
            )
        });
        let _stop_health = AbortOnDrop(health_only);
        tokio::pin!(server);
        tokio::select! {
            result = &mut server => result.map_err(|e| RuntimeError::Serve(e.to_string())),
            () = async {
                let _ = closed_rx.await;
                tokio::time::sleep(drain).await;
            } => {
                tracing::warn!(drain_ms = drain.as_millis(), "shutdown: drain deadline passed, closing remaining calls");
                Ok(())
            }
        }
    }
}

/// The health service as `tonic_health` builds it.
type HealthService =
    tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>;

/// Stops a spawned server when dropped.
struct AbortOnDrop(Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// Runs every probe each `interval` until shutdown, and publishes the results.
async fn run_probes(
    probes: Vec<(&'static str, ReadinessProbe)>,
    health: HealthReporter,
    interval: Duration,
    shutdown: Shutdown,
) {
    let mut last: Vec<Option<bool>> = vec![None; probes.len()];
    loop {
        let mut all_ready = true;
        for (i, (service, probe)) in probes.iter().enumerate() {
            let ready = tokio::select! {
                () = shutdown.wait() => return,
                ready = probe() => ready,
            };
            all_ready &= ready;
            if last[i] != Some(ready) {
                match (last[i], ready) {
                    (_, true) => tracing::info!(service, "ready"),
                    // Starting up (a profile node taking its shards): expected, not a warning.
                    (None, false) => tracing::info!(service, "not ready yet"),
                    (Some(_), false) => {
                        tracing::warn!(service, "not ready: readiness probe failed");
                    }
                }
                last[i] = Some(ready);
            }
            let status = if ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            health.set_service_status(*service, status).await;
        }
        let overall = if all_ready {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        health.set_service_status("", overall).await;
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

async fn set_all(health: &HealthReporter, names: &[&'static str], status: ServingStatus) {
    health.set_service_status("", status).await;
    for name in names {
        health.set_service_status(*name, status).await;
    }
}

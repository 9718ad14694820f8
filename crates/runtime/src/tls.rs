//! TLS and mutual TLS for the gRPC server (rustls with ring): the settings, the accept loop that
//! does each handshake in its own task, and the reload of changed certificate files.
//!
//! The rustls configuration is swapped atomically; each accepted connection takes the one
//! current at that moment, so a reload applies to new connections only.

use std::{
    io,
    pin::Pin,
    sync::{Arc, PoisonError, RwLock},
    task::{Context, Poll},
    time::Duration,
};

use iee_api::transport::{
    FileStamps, TransportError, crypto_provider, load_certs, load_private_key, load_roots,
};
use iee_telemetry::MetricsRegistry;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
};
use rustls::server::WebPkiClientVerifier;
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tonic::{
    codegen::tokio_stream::Stream,
    transport::server::{Connected, TcpConnectInfo, TcpIncoming},
};

use crate::Shutdown;

/// A client that connects and then stalls must not hold a task and a socket for long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Server TLS settings (`[server.tls]`). All empty: plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// PEM certificate chain of the server (leaf first); setting it turns TLS on.
    pub cert_file: String,
    /// PEM private key of `cert_file` (PKCS#8, PKCS#1/RSA or SEC1).
    pub key_file: String,
    /// PEM CA certificate(s) of the clients; set: mutual TLS, every client must present a
    /// certificate signed by one of them. Empty: no client certificate is asked for.
    pub client_ca_file: String,
    /// How often the files' modification times are checked for a reload.
    pub reload_interval_ms: u64,
}

impl Default for ServerTlsConfig {
    fn default() -> Self {
        Self {
            cert_file: String::new(),
            key_file: String::new(),
            client_ca_file: String::new(),
            reload_interval_ms: 10_000,
        }
    }
}

impl ServerTlsConfig {
    /// Whether any TLS setting is made (then it must be complete).
    pub fn is_enabled(&self) -> bool {
        !(self.cert_file.is_empty() && self.key_file.is_empty() && self.client_ca_file.is_empty())
    }

    /// Checks that the settings are complete, without reading the files.
    pub fn validate(&self) -> Result<(), TransportError> {
        if !self.is_enabled() {
            return Ok(());
        }
        let missing = |field, message: &str| {
            Err(TransportError::Config {
                field,
                message: message.to_owned(),
            })
        };
        if self.cert_file.is_empty() {
            return missing(
                "server.tls.cert_file",
                "must be set when server.tls.key_file or client_ca_file is",
            );
        }
        if self.key_file.is_empty() {
            return missing(
                "server.tls.key_file",
                "must be set when server.tls.cert_file is",
            );
        }
        Ok(())
    }

    fn stamps(&self) -> FileStamps {
        FileStamps::of([
            self.cert_file.as_str(),
            self.key_file.as_str(),
            self.client_ca_file.as_str(),
        ])
    }

    /// Validates the settings and builds the rustls configuration from the files.
    pub fn load(&self) -> Result<rustls::ServerConfig, TransportError> {
        self.validate()?;
        let provider = crypto_provider();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TransportError::Config {
                field: "server.tls",
                message: e.to_string(),
            })?;
        let builder = if self.client_ca_file.is_empty() {
            builder.with_no_client_auth()
        } else {
            let field = "server.tls.client_ca_file";
            let roots = load_roots(field, &self.client_ca_file)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TransportError::Invalid {
                    field,
                    path: self.client_ca_file.clone(),
                    message: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        };
        let certs = load_certs("server.tls.cert_file", &self.cert_file)?;
        let key = load_private_key("server.tls.key_file", &self.key_file)?;
        let mut config =
            builder
                .with_single_cert(certs, key)
                .map_err(|e| TransportError::Invalid {
                    field: "server.tls.key_file",
                    path: self.key_file.clone(),
                    message: format!("does not fit server.tls.cert_file: {e}"),
                })?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

const OK: ResultLabels = ResultLabels { result: "ok" };
const ERROR: ResultLabels = ResultLabels { result: "error" };

/// The TLS events of one server: `iee_tls_reloads_total{result="ok|error"}` and
/// `iee_tls_handshake_failures_total`, readable here too (tests, diagnostics).
#[derive(Debug, Default)]
pub struct TlsStats {
    reloads: Family<ResultLabels, Counter>,
    handshake_failures: Counter,
}

impl TlsStats {
    /// Certificate reloads that took effect.
    pub fn reloads_ok(&self) -> u64 {
        self.reloads.get_or_create(&OK).get()
    }

    /// Reloads whose files were rejected (the previous certificates stayed).
    pub fn reloads_failed(&self) -> u64 {
        self.reloads.get_or_create(&ERROR).get()
    }

    /// Handshakes that failed or timed out.
    pub fn handshakes_failed(&self) -> u64 {
        self.handshake_failures.get()
    }

    fn register(&self, registry: &MetricsRegistry) {
        registry.register(
            "iee_tls_reloads",
            "Certificate reloads after a file changed, by result (error: the previous certificates stay)",
            self.reloads.clone(),
        );
        registry.register(
            "iee_tls_handshake_failures",
            "TLS handshakes that failed or timed out (plaintext or untrusted clients, missing client certificates)",
            self.handshake_failures.clone(),
        );
    }
}

/// The loaded TLS state of a server: the settings, the current rustls config, the counters.
#[derive(Clone)]
pub(crate) struct TlsState {
    config: ServerTlsConfig,
    current: Arc<RwLock<Arc<rustls::ServerConfig>>>,
    stamps: FileStamps,
    stats: Arc<TlsStats>,
}

impl TlsState {
    fn current(&self) -> Arc<rustls::ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The listener of a [`crate::GrpcServer`], plaintext or TLS.
pub(crate) enum Listener {
    Plain(TcpIncoming),
    Tls(TcpListener, TlsState),
}

impl Listener {
    /// Wraps `listener`, loading the certificates now when TLS is configured.
    pub(crate) fn new(
        listener: TcpListener,
        config: &ServerTlsConfig,
    ) -> Result<Self, TransportError> {
        if !config.is_enabled() {
            return Ok(Self::Plain(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
            ));
        }
        // Stamped before reading, so a change during the read is seen by the first check.
        let stamps = config.stamps();
        let current = config.load()?;
        tracing::info!(
            cert_file = %config.cert_file,
            mutual = !config.client_ca_file.is_empty(),
            "tls: server certificates loaded"
        );
        Ok(Self::Tls(
            listener,
            TlsState {
                config: config.clone(),
                current: Arc::new(RwLock::new(Arc::new(current))),
                stamps,
                stats: Arc::default(),
            },
        ))
    }

    /// Registers the TLS metrics in `registry`, when TLS is on.
    pub(crate) fn register_metrics(&self, registry: &MetricsRegistry) {
        if let Self::Tls(_, state) = self {
            state.stats.register(registry);
        }
    }

    /// The TLS counters, when TLS is on.
    pub(crate) fn tls_stats(&self) -> Option<Arc<TlsStats>> {
        match self {
            Self::Plain(_) => None,
            Self::Tls(_, state) => Some(state.stats.clone()),
        }
    }

    /// Starts accepting (and, with TLS, the reload task, which ends on `shutdown`). The
    /// listener closes when tonic drops the returned stream.
    pub(crate) fn start(self, shutdown: Shutdown) -> Incoming {
        match self {
            Self::Plain(incoming) => Incoming::Plain(incoming),
            Self::Tls(listener, state) => {
                let (tx, rx) = mpsc::channel(128);
                tokio::spawn(reload_loop(state.clone(), shutdown));
                tokio::spawn(accept_loop(listener, state, tx));
                Incoming::Tls(rx)
            }
        }
    }
}

/// The connections handed to tonic.
pub(crate) enum Incoming {
    Plain(TcpIncoming),
    Tls(mpsc::Receiver<ServerIo>),
}

impl Stream for Incoming {
    type Item = io::Result<ServerIo>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut() {
            Self::Plain(incoming) => Pin::new(incoming)
                .poll_next(cx)
                .map(|next| next.map(|accepted| accepted.map(ServerIo::Plain))),
            Self::Tls(rx) => rx.poll_recv(cx).map(|next| next.map(Ok)),
        }
    }
}

/// Accepts TCP connections until tonic drops the incoming stream; each handshake runs in its
/// own task so a slow or failing client cannot hold up the others.
async fn accept_loop(listener: TcpListener, state: TlsState, tx: mpsc::Sender<ServerIo>) {
    loop {
        let (tcp, peer) = tokio::select! {
            () = tx.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "tls: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = tokio_rustls::TlsAcceptor::from(state.current());
        let stats = state.stats.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send(ServerIo::Tls(Box::new(stream))).await;
                }
                Ok(Err(error)) => {
                    stats.handshake_failures.inc();
                    tracing::debug!(%peer, %error, "tls: handshake failed");
                }
                Err(_) => {
                    stats.handshake_failures.inc();
                    tracing::debug!(%peer, "tls: handshake timed out");
                }
            }
        });
    }
}

/// Every `reload_interval_ms` until shutdown: when a file changed, load them all again and
/// swap the configuration in; a failure keeps the previous one.
async fn reload_loop(state: TlsState, shutdown: Shutdown) {
    let interval = Duration::from_millis(state.config.reload_interval_ms.max(1));
    let mut stamps = state.stamps.clone();
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let now = state.config.stamps();
        if now == stamps {
            continue;
        }
        stamps = now;
        match state.config.load() {
            Ok(config) => {
                *state
                    .current
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
                state.stats.reloads.get_or_create(&OK).inc();
                tracing::info!("tls: certificates reloaded");
            }
            Err(error) => {
                state.stats.reloads.get_or_create(&ERROR).inc();
                tracing::warn!(%error, "tls: reload failed, keeping the previous certificates");
            }
        }
    }
}

/// A served connection: plain TCP or TLS over TCP. Its connect info is tonic's
/// [`TcpConnectInfo`] either way, so `Request::remote_addr` works as without TLS.
pub(crate) enum ServerIo {
    /// Plaintext.
    Plain(TcpStream),
    /// TLS (boxed: the session state is large).
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Connected for ServerIo {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        match self {
            Self::Plain(tcp) => tcp.connect_info(),
            Self::Tls(tls) => tls.get_ref().0.connect_info(),
        }
    }
}

impl AsyncRead for ServerIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Self::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Self::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Self::Tls(io) => Pin::new(io.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(io) => io.is_write_vectored(),
            Self::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_flush(cx),
            Self::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Self::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}

//! Client transport: the one place gRPC endpoints and channels are built, in plaintext or over
//! TLS (rustls with ring), optionally mutual, with certificates reloaded without a restart.
//!
//! Client TLS is process-wide: a process is one service identity, so every client it makes
//! (to decide, kpi, ingest, predict, profile peers) presents the same certificate and trusts
//! the same CA. [`install_client_tls`] sets it once at start-up, before clients are built;
//! [`endpoint`] and [`connect_lazy`]/[`connect`] then make every connection TLS. The files are
//! checked for changes (modification time and size) at most every `reload_interval_ms` when a
//! new connection is made; a change applies to new connections only, a bad file keeps the
//! previous configuration. The PEM loaders are shared with the server side (`iee-runtime`).

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant, SystemTime},
};

use hyper_util::rt::TokioIo;
use rustls::{
    RootCertStore,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tonic::{
    codegen::{Service, http::Uri},
    transport::{Channel, Endpoint},
};

/// Client TLS settings (`[client.tls]`). All empty: plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientTlsConfig {
    /// PEM file of the CA(s) that sign the servers' certificates; setting it turns TLS on.
    pub ca_file: String,
    /// PEM certificate chain presented to servers that ask for one (mutual TLS); needs
    /// `key_file`.
    pub cert_file: String,
    /// PEM private key of `cert_file` (PKCS#8, PKCS#1/RSA or SEC1).
    pub key_file: String,
    /// Name the servers' certificates are checked against; empty: the host of each address.
    pub server_name: String,
    /// How often, at most, the files are checked for changes when a connection is made.
    pub reload_interval_ms: u64,
}

impl Default for ClientTlsConfig {
    fn default() -> Self {
        Self {
            ca_file: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            server_name: String::new(),
            reload_interval_ms: 10_000,
        }
    }
}

impl ClientTlsConfig {
    /// Whether any TLS setting is made (then it must be complete).
    pub fn is_enabled(&self) -> bool {
        !(self.ca_file.is_empty() && self.cert_file.is_empty() && self.key_file.is_empty())
    }
}

/// Why TLS settings or files were rejected; the message names the config field and the file.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A file could not be read.
    #[error("`{field}` {path}: cannot read: {source}")]
    Read {
        /// The config field naming the file, e.g. `client.tls.ca_file`.
        field: &'static str,
        /// The file.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// A file was read but holds no usable certificate or key.
    #[error("`{field}` {path}: {message}")]
    Invalid {
        /// The config field naming the file.
        field: &'static str,
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The settings are incomplete or contradictory.
    #[error("`{field}`: {message}")]
    Config {
        /// The config field to fix.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The crypto provider of every TLS config here: ring, chosen explicitly so that no process-wide
/// default has to be installed and another provider in the tree cannot make it ambiguous.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(field: &'static str, path: &str) -> Result<Vec<u8>, TransportError> {
    std::fs::read(path).map_err(|source| TransportError::Read {
        field,
        path: path.to_owned(),
        source,
    })
}

fn invalid(field: &'static str, path: &str, message: impl Into<String>) -> TransportError {
    TransportError::Invalid {
        field,
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Reads a PEM certificate chain (leaf first); `field` names the setting in errors.
pub fn load_certs(
    field: &'static str,
    path: &str,
) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let pem = read(field, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(field, path, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(field, path, "no CERTIFICATE found"));
    }
    Ok(certs)
}

/// Reads a PEM private key (PKCS#8, PKCS#1/RSA or SEC1); `field` names the setting in errors.
pub fn load_private_key(
    field: &'static str,
    path: &str,
) -> Result<PrivateKeyDer<'static>, TransportError> {
    let pem = read(field, path)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| invalid(field, path, format!("no private key: {e}")))
}

/// Reads PEM CA certificates into a root store; `field` names the setting in errors.
pub fn load_roots(field: &'static str, path: &str) -> Result<RootCertStore, TransportError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(field, path)? {
        roots
            .add(cert)
            .map_err(|e| invalid(field, path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// Modification time and size of a set of files: what the reload compares. Kubernetes updates
/// a mounted Secret by swapping a symlink, which changes both of the files the links lead to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamps(Vec<Option<(SystemTime, u64)>>);

impl FileStamps {
    /// The stamps of `paths` now (empty paths are skipped; unreadable files stamp as `None`).
    pub fn of<'a>(paths: impl IntoIterator<Item = &'a str>) -> Self {
        Self(
            paths
                .into_iter()
                .filter(|p| !p.is_empty())
                .map(|p| {
                    std::fs::metadata(p)
                        .ok()
                        .and_then(|m| Some((m.modified().ok()?, m.len())))
                })
                .collect(),
        )
    }
}

/// A loaded client TLS configuration that reloads its files when they change. Cheap to clone.
#[derive(Clone)]
pub struct ClientTls {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: ClientTlsConfig,
    interval: Duration,
    state: Mutex<State>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

struct State {
    current: Arc<rustls::ClientConfig>,
    stamps: FileStamps,
    checked: Instant,
}

impl ClientTls {
    /// Validates `config` and loads its files; `None` when no TLS setting is made.
    pub fn load(config: &ClientTlsConfig) -> Result<Option<Self>, TransportError> {
        if !config.is_enabled() {
            return Ok(None);
        }
        if config.ca_file.is_empty() {
            return Err(TransportError::Config {
                field: "client.tls.ca_file",
                message: "must be set when client.tls.cert_file or key_file is".to_owned(),
            });
        }
        if config.cert_file.is_empty() != config.key_file.is_empty() {
            let field = if config.key_file.is_empty() {
                "client.tls.key_file"
            } else {
                "client.tls.cert_file"
            };
            return Err(TransportError::Config {
                field,
                message: "client.tls.cert_file and key_file must be set together".to_owned(),
            });
        }
        if !config.server_name.is_empty() {
            ServerName::try_from(config.server_name.clone()).map_err(|e| {
                TransportError::Config {
                    field: "client.tls.server_name",
                    message: format!(
                        "{:?} is not a DNS name or IP address: {e}",
                        config.server_name
                    ),
                }
            })?;
        }
        // Stamped before reading, so a change during the read is seen by the next check.
        let stamps = stamps(config);
        let current = Arc::new(build_client_config(config)?);
        Ok(Some(Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                interval: Duration::from_millis(config.reload_interval_ms),
                state: Mutex::new(State {
                    current,
                    stamps,
                    checked: Instant::now(),
                }),
                reloads_ok: AtomicU64::new(0),
                reloads_failed: AtomicU64::new(0),
            }),
        }))
    }

    /// The configuration for a new connection, reloaded first if the files changed since the
    /// last check and that check is at least `reload_interval_ms` old.
    pub fn current(&self) -> Arc<rustls::ClientConfig> {
        let mut state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if state.checked.elapsed() >= self.inner.interval {
            state.checked = Instant::now();
            let now = stamps(&self.inner.config);
            if now != state.stamps {
                state.stamps = now;
                match build_client_config(&self.inner.config) {
                    Ok(config) => {
                        state.current = Arc::new(config);
                        self.inner.reloads_ok.fetch_add(1, Ordering::Relaxed);
                        tracing::info!("tls: client certificates reloaded");
                    }
                    Err(error) => {
                        self.inner.reloads_failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            %error,
                            "tls: client certificate reload failed, keeping the previous ones"
                        );
                    }
                }
            }
        }
        state.current.clone()
    }

    /// Reloads of changed files that took effect.
    pub fn reloads_ok(&self) -> u64 {
        self.inner.reloads_ok.load(Ordering::Relaxed)
    }

    /// Reloads whose files were rejected (the previous configuration stayed).
    pub fn reloads_failed(&self) -> u64 {
        self.inner.reloads_failed.load(Ordering::Relaxed)
    }

    /// A channel to `endpoint` whose every connection is made over TLS, connected on first use.
    /// The endpoint's connect timeout applies; TCP_NODELAY is always set.
    pub fn connect_lazy(&self, endpoint: &Endpoint) -> Channel {
        endpoint.connect_with_connector_lazy(self.connector())
    }

    /// A channel to `endpoint` over TLS, connected now.
    pub async fn connect(&self, endpoint: &Endpoint) -> Result<Channel, tonic::transport::Error> {
        endpoint.connect_with_connector(self.connector()).await
    }

    fn connector(&self) -> TlsConnector {
        TlsConnector { tls: self.clone() }
    }
}

fn stamps(config: &ClientTlsConfig) -> FileStamps {
    FileStamps::of([
        config.ca_file.as_str(),
        config.cert_file.as_str(),
        config.key_file.as_str(),
    ])
}

fn build_client_config(config: &ClientTlsConfig) -> Result<rustls::ClientConfig, TransportError> {
    let roots = load_roots("client.tls.ca_file", &config.ca_file)?;
    let builder = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Config {
            field: "client.tls",
            message: e.to_string(),
        })?
        .with_root_certificates(roots);
    let mut tls = if config.cert_file.is_empty() {
        builder.with_no_client_auth()
    } else {
        let certs = load_certs("client.tls.cert_file", &config.cert_file)?;
        let key = load_private_key("client.tls.key_file", &config.key_file)?;
        builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| invalid("client.tls.key_file", &config.key_file, e.to_string()))?
    };
    tls.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tls)
}

/// The tower connector tonic calls for each new connection: TCP, then the TLS handshake with the
/// configuration current at that moment.
#[derive(Clone)]
struct TlsConnector {
    tls: ClientTls,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Service<Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = self.tls.current();
        let configured_name = self.tls.inner.config.server_name.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| format!("address {uri} has no host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
                Some("https") => 443,
                _ => 80,
            });
            let name = if configured_name.is_empty() {
                host.clone()
            } else {
                configured_name
            };
            let name = ServerName::try_from(name)?;
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(stream))
        })
    }
}

static INSTALLED: RwLock<Option<ClientTls>> = RwLock::new(None);

/// Sets the process-wide client TLS from `config` (all empty: plaintext), after validating it
/// and loading its files. Call it at start-up, before any client is built: channels made
/// before keep their transport.
pub fn install_client_tls(config: &ClientTlsConfig) -> Result<(), TransportError> {
    let tls = ClientTls::load(config)?;
    if tls.is_some() {
        tracing::info!(
            ca_file = %config.ca_file,
            mutual = !config.cert_file.is_empty(),
            "tls: client tls installed"
        );
    }
    *INSTALLED.write().unwrap_or_else(PoisonError::into_inner) = tls;
    Ok(())
}

/// The process-wide client TLS, if installed.
pub fn installed_client_tls() -> Option<ClientTls> {
    INSTALLED
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// The endpoint of `addr` (`host:port`, `http://host:port` or `https://host:port`). With client
/// TLS installed every connection is TLS whatever the scheme (in a TLS mesh every server speaks
/// TLS); `https://` without it is an error.
pub fn endpoint(addr: &str) -> Result<Endpoint, String> {
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    let endpoint = Endpoint::from_shared(uri).map_err(|e| format!("bad address {addr:?}: {e}"))?;
    if endpoint.uri().scheme_str() == Some("https") && installed_client_tls().is_none() {
        return Err(format!(
            "address {addr:?}: https needs client.tls.ca_file (client TLS is not configured)"
        ));
    }
    Ok(endpoint)
}

/// A channel to `endpoint`, connected on first use: over the installed client TLS, if any.
pub fn connect_lazy(endpoint: Endpoint) -> Channel {
    match installed_client_tls() {
        Some(tls) => tls.connect_lazy(&endpoint),
        None => endpoint.connect_lazy(),
    }
}

/// A channel to `endpoint`, connected now: over the installed client TLS, if any.
pub async fn connect(endpoint: Endpoint) -> Result<Channel, tonic::transport::Error> {
    match installed_client_tls() {
        Some(tls) => tls.connect(&endpoint).await,
        None => endpoint.connect().await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn empty_config_is_plaintext() {
        assert!(
            ClientTls::load(&ClientTlsConfig::default())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn cert_without_ca_names_the_ca_field() {
        let config = ClientTlsConfig {
            cert_file: "c.pem".into(),
            key_file: "k.pem".into(),
            ..ClientTlsConfig::default()
        };
        let err = ClientTls::load(&config).unwrap_err().to_string();
        assert!(err.contains("client.tls.ca_file"), "{err}");
    }

    #[test]
    fn cert_without_key_names_the_key_field() {
        let config = ClientTlsConfig {
            ca_file: "ca.pem".into(),
            cert_file: "c.pem".into(),
            ..ClientTlsConfig::default()
        };
        let err = ClientTls::load(&config).unwrap_err().to_string();
        assert!(err.contains("client.tls.key_file"), "{err}");
    }

    #[test]
    fn missing_ca_file_names_the_field_and_file() {
        let config = ClientTlsConfig {
            ca_file: "/nonexistent/iee-ca.pem".into(),
            ..ClientTlsConfig::default()
        };
        let err = ClientTls::load(&config).unwrap_err().to_string();
        assert!(err.contains("client.tls.ca_file"), "{err}");
        assert!(err.contains("/nonexistent/iee-ca.pem"), "{err}");
    }

    #[test]
    fn file_without_pem_certificates_is_invalid() {
        let path = std::env::temp_dir().join(format!("iee-transport-{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = load_certs("client.tls.ca_file", path.to_str().unwrap())
            .unwrap_err()
            .to_string();
        let _ = std::fs::remove_file(&path);
        assert!(err.contains("no CERTIFICATE"), "{err}");
    }

    #[test]
    fn endpoint_accepts_bare_and_http_addresses_and_refuses_https_without_tls() {
        assert_eq!(
            endpoint("127.0.0.1:1").unwrap().uri().scheme_str(),
            Some("http")
        );
        assert!(endpoint("http://127.0.0.1:1").is_ok());
        // No test in this binary installs client TLS.
        let err = endpoint("https://127.0.0.1:1").unwrap_err();
        assert!(err.contains("client.tls.ca_file"), "{err}");
    }
}

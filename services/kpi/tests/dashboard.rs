//! The Prometheus face of a KPI node: from log records in an in-memory store, the node
//! aggregates and exports the current KPI values and the global holdout's uplift; the Grafana
//! dashboard in `dashboards/iee-kpi.json` is valid JSON and reads only metrics the node exports.
#![allow(clippy::unwrap_used)] // Test code: a panic with the error is the failure report.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use iee_api::{
    pb::common::{Channel, Event, Exposure, ExposureArm, LogRecord, SurveyAnswer, SurveyKind},
    shard::{customer_key, shard_of},
};
use iee_config::ClusterConfig;
use iee_kpi::{KpiConfig, KpiNode};
use iee_store::{AppendRequest, MemoryStore, Stores};
use iee_telemetry::MetricsRegistry;
use prost::Message;

const SHARDS: u32 = 4;

const DASHBOARD: &str = include_str!("../../../dashboards/iee-kpi.json");

/// Every `iee_kpi_…` name in `text`, without the sample suffixes Prometheus adds.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("iee_kpi_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let mut name = &tail[..end];
        for suffix in ["_total", "_bucket", "_count", "_sum"] {
            name = name.strip_suffix(suffix).unwrap_or(name);
        }
        names.push(name.to_owned());
        rest = &tail[end..];
    }
    names.sort();
    names.dedup();
    names
}

/// An event of customer `c-<i>` now.
fn event(i: u32, kind: &str) -> Event {
    Event {
        event_id: format!("{kind}-{i}"),
        tenant_id: "acme".into(),
        customer_id: format!("c-{i}"),
        r#type: kind.into(),
        channel: Channel::Web as i32,
        touchpoint: "home".into(),
        occurred_at: Some(SystemTime::now().into()),
        ..Event::default()
    }
}

fn append(record: &LogRecord) -> AppendRequest {
    let event = record.event.as_ref().unwrap();
    AppendRequest {
        shard: shard_of(
            &event.tenant_id,
            &customer_key(&event.customer_id, &event.anonymous_id),
            SHARDS,
        ),
        tenant_id: event.tenant_id.clone(),
        event_id: event.event_id.clone(),
        payload: record.encode_to_vec(),
    }
}

/// Forty customers get a decision (one in four in the global holdout) and answer an NPS survey.
fn records() -> Vec<AppendRequest> {
    let mut out = Vec::new();
    for i in 0..40 {
        let control = i % 4 == 0;
        out.push(append(&LogRecord {
            event: Some(event(i, "decision")),
            exposure: Some(Exposure {
                decision_id: format!("d-{i}"),
                action_ids: if control {
                    vec![]
                } else {
                    vec!["offer".into()]
                },
                arms: vec![ExposureArm {
                    experiment_id: "global".into(),
                    arm: if control { "control" } else { "treatment" }.into(),
                    allocation: if control { 0.25 } else { 0.75 },
                }],
                holdout: control,
                ..Exposure::default()
            }),
            ..LogRecord::default()
        }));
        let mut survey = event(i, "survey_response");
        survey.survey = Some(SurveyAnswer {
            kind: SurveyKind::Nps as i32,
            score: if control { 6 } else { 9 },
            survey_id: "nps".into(),
        });
        out.push(append(&LogRecord {
            event: Some(survey),
            ..LogRecord::default()
        }));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_exports_kpis_and_the_dashboard_reads_only_exported_metrics() {
    let store = Arc::new(MemoryStore::new(SHARDS));
    let stores = Stores::from_one(store);
    stores
        .log
        .append(&records(), Duration::from_secs(3_600))
        .await
        .unwrap();
    let registry = MetricsRegistry::default();
    let config = KpiConfig {
        partitions: 2,
        poll_block_ms: 50,
        gauge_interval_secs: 1,
        ..KpiConfig::default()
    };
    let node = KpiNode::build(
        config,
        &ClusterConfig {
            shard_count: SHARDS,
        },
        stores,
        &registry,
    );
    assert!(!node.is_ready(), "ready before any aggregation round");
    node.start();
    let nps = r#"iee_kpi_value{tenant="acme",metric="nps",channel="all"} 50.0"#;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let exposed = loop {
        let exposed = registry.encode();
        if exposed.contains(nps) && exposed.contains("iee_kpi_uplift{") {
            break exposed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no KPI gauges after 20 s:\n{exposed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(node.is_ready(), "not ready after aggregating");
    node.stop().await;
    // NPS of the treatment is 100 (all promoters), of control -100: uplift 200.
    assert!(
        exposed.contains(
            r#"iee_kpi_uplift{tenant="acme",experiment="global",metric="nps",bound="value"} 200"#
        ),
        "{exposed}"
    );
    assert!(
        exposed.contains(r#"iee_kpi_value{tenant="acme",metric="nps",channel="web"} 50.0"#),
        "{exposed}"
    );

    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).unwrap();
    let mut queries = String::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push_str(target["expr"].as_str().unwrap());
            queries.push('\n');
        }
    }
    let used = metric_names(&queries);
    assert!(used.len() >= 8, "{used:?}");
    // The RPC metrics (`iee_kpi_rpc_*`) are the shared RED metrics, which appear with the
    // first gRPC call; this node answered none.
    for name in used.iter().filter(|n| !n.starts_with("iee_kpi_rpc_")) {
        assert!(
            exposed.contains(&format!("# TYPE {name} ")),
            "the dashboard reads {name}, which the KPI node does not export"
        );
    }
}

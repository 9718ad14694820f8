//! The KPI service against a private `redis-server`, for docs/performance.md.
//!
//! - `aggregate`: fills the shard logs with a realistic mix (decisions as exposure records,
//!   page views, outcomes, purchases, NPS and CSAT answers) over many customers, then starts a
//!   KPI node and measures log records aggregated per second until every record is committed.
//! - `query`: `QueryMetrics` latency over those aggregates: several metrics, 24 hourly buckets,
//!   grouped by channel, and `GetExperiment` on the global holdout.
//!
//! ```text
//! cargo bench -p iee-kpi --bench kpi -- [--events 200000] [--customers 20000] [--spread-secs 86000] [--queries 300]
//! ```
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use hdrhistogram::Histogram;
use iee_api::{
    kpi::{Dimension, GetExperimentRequest, KpiApi, QueryMetricsRequest},
    pb::common::{
        Channel, Event, Exposure, ExposureArm, LogRecord, Money, PropertyValue, SurveyAnswer,
        SurveyKind, property_value::Kind,
    },
    shard::{customer_key, shard_of},
};
use iee_config::ClusterConfig;
use iee_kpi::{KpiConfig, KpiNode};
use iee_store::{AppendRequest, RedisConfig, RedisStore, Stores};
use iee_telemetry::MetricsRegistry;
use iee_test_support::RedisServer;
use prost::Message;
use tokio::time::Instant;

const SHARDS: u32 = 64;
const TENANT: &str = "bench";
const CHANNELS: [Channel; 3] = [Channel::Web, Channel::App, Channel::Email];

/// The number after `--name` on the command line, else `default`.
fn number(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .map_or(default, |i| args[i + 1].parse().unwrap())
}

fn text(value: &str) -> PropertyValue {
    PropertyValue {
        kind: Some(Kind::StringValue(value.to_owned())),
    }
}

/// The `i`-th record: per customer a decision, then its impression, a page view, and now and
/// then a click, a purchase, a survey answer; spread over the last `spread` seconds.
fn record(i: u64, customers: u64, spread: u64, now: SystemTime) -> LogRecord {
    let customer = i % customers;
    let round = i / customers;
    let at = now - Duration::from_secs((i * 7919) % spread.max(1));
    let decision = format!("d-{customer}-{}", round / 6);
    let mut event = Event {
        event_id: format!("e-{i}"),
        tenant_id: TENANT.into(),
        customer_id: format!("c-{customer}"),
        channel: CHANNELS[usize::try_from(customer % 3).unwrap()] as i32,
        touchpoint: format!("page-{}", customer % 20),
        occurred_at: Some(at.into()),
        ..Event::default()
    };
    let mut record = LogRecord::default();
    match round % 6 {
        0 => {
            event.r#type = "decision".into();
            let control = customer.is_multiple_of(10);
            record.exposure = Some(Exposure {
                decision_id: decision,
                action_ids: if control {
                    vec![]
                } else {
                    vec![format!("action-{}", (customer + round) % 50)]
                },
                arms: vec![ExposureArm {
                    experiment_id: "global".into(),
                    arm: if control { "control" } else { "treatment" }.into(),
                    allocation: if control { 0.1 } else { 0.9 },
                }],
                holdout: control,
                predicted_clv: Some(10_000.0 + f64::from(u32::try_from(customer % 100).unwrap())),
                ..Exposure::default()
            });
        }
        1 | 2 => {
            event.r#type = "decision_outcome".into();
            let kind = if round % 6 == 1 {
                "impression"
            } else {
                "click"
            };
            event
                .properties
                .insert("decision_id".into(), text(&decision));
            event.properties.insert(
                "action_id".into(),
                text(&format!("action-{}", (customer + round - round % 6) % 50)),
            );
            event.properties.insert("kind".into(), text(kind));
        }
        3 => event.r#type = "page_view".into(),
        4 => {
            event.r#type = "purchase".into();
            event.value = Some(Money {
                amount_minor: i64::try_from(1_000 + i % 9_000).unwrap(),
                currency: "EUR".into(),
            });
        }
        _ => {
            event.r#type = "survey_response".into();
            event.survey = Some(if customer.is_multiple_of(2) {
                SurveyAnswer {
                    kind: SurveyKind::Nps as i32,
                    score: i32::try_from(i % 11).unwrap(),
                    survey_id: "nps".into(),
                }
            } else {
                SurveyAnswer {
                    kind: SurveyKind::Csat as i32,
                    score: i32::try_from(1 + i % 5).unwrap(),
                    survey_id: "csat".into(),
                }
            });
        }
    }
    record.event = Some(event);
    record.received_at = Some(now.into());
    record
}

async fn fill(stores: &Stores, events: u64, customers: u64, spread: u64) {
    let now = SystemTime::now();
    let started = Instant::now();
    let mut batch = Vec::with_capacity(1_000);
    for i in 0..events {
        let record = record(i, customers, spread, now);
        let event = record.event.as_ref().unwrap();
        batch.push(AppendRequest {
            shard: shard_of(
                TENANT,
                &customer_key(&event.customer_id, &event.anonymous_id),
                SHARDS,
            ),
            tenant_id: TENANT.into(),
            event_id: event.event_id.clone(),
            payload: record.encode_to_vec(),
        });
        if batch.len() == 1_000 {
            stores
                .log
                .append(&batch, Duration::from_secs(3_600))
                .await
                .unwrap();
            batch.clear();
        }
    }
    stores
        .log
        .append(&batch, Duration::from_secs(3_600))
        .await
        .unwrap();
    eprintln!(
        "filled {events} records over {customers} customers in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn counter(exposed: &str, name: &str) -> u64 {
    exposed
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

fn percentiles(label: &str, histogram: &Histogram<u64>) {
    #[allow(clippy::cast_precision_loss)]
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "| {label} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
        histogram.len(),
        ms(histogram.value_at_quantile(0.5)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.value_at_quantile(0.999)),
        ms(histogram.max()),
    );
}

#[tokio::main]
async fn main() {
    let events = number("--events", 200_000);
    let customers = number("--customers", 20_000);
    let queries = number("--queries", 300);
    let spread = number("--spread-secs", 86_000);
    let server = RedisServer::start();
    let store = Arc::new(
        RedisStore::open(&RedisConfig {
            url: server.url(),
            ..RedisConfig::default()
        })
        .unwrap(),
    );
    let stores = Stores::from_one(store);
    fill(&stores, events, customers, spread).await;

    let registry = MetricsRegistry::default();
    let config = KpiConfig {
        gauge_interval_secs: 0,
        poll_block_ms: 20,
        ..KpiConfig::default()
    };
    let partitions = config.partitions;
    let node = KpiNode::build(
        config,
        &ClusterConfig {
            shard_count: SHARDS,
        },
        stores.clone(),
        &registry,
    );
    let started = Instant::now();
    node.start();
    loop {
        let exposed = registry.encode();
        let folded = counter(&exposed, "iee_kpi_events_folded_total");
        let skipped: u64 = exposed
            .lines()
            .filter(|l| l.starts_with("iee_kpi_records_skipped_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum();
        if folded + skipped >= events {
            let seconds = started.elapsed().as_secs_f64();
            #[allow(clippy::cast_precision_loss)]
            let rate = events as f64 / seconds;
            println!(
                "aggregate: {events} records ({customers} customers over {spread} s, {SHARDS} shards, {partitions} partitions, one replica) in {seconds:.2} s = {rate:.0} records/s; increments committed {}",
                counter(&exposed, "iee_kpi_increments_total")
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let client = node.client();
    let now = SystemTime::now();
    let hour = now.duration_since(UNIX_EPOCH).unwrap().as_secs() / 3_600 * 3_600;
    let start = UNIX_EPOCH + Duration::from_secs(hour - 23 * 3_600);
    let end = UNIX_EPOCH + Duration::from_secs(hour + 3_600);
    let request = QueryMetricsRequest {
        tenant_id: TENANT.into(),
        metrics: vec![
            "nps".into(),
            "csat".into(),
            "conversion_rate".into(),
            "click_through_rate".into(),
            "average_order_value".into(),
        ],
        start_time: Some(start.into()),
        end_time: Some(end.into()),
        bucket_width: Some(prost_types::Duration {
            seconds: 3_600,
            nanos: 0,
        }),
        group_by: vec![Dimension::Channel as i32],
        ..QueryMetricsRequest::default()
    };
    let mut by_hour = Histogram::<u64>::new(3).unwrap();
    let mut whole_day = Histogram::<u64>::new(3).unwrap();
    let mut experiment = Histogram::<u64>::new(3).unwrap();
    let mut series = 0;
    for _ in 0..queries {
        let t = Instant::now();
        let response = client.query_metrics(request.clone()).await.unwrap();
        by_hour.record(micros(t)).unwrap();
        series = response.series.len();
        let t = Instant::now();
        client
            .query_metrics(QueryMetricsRequest {
                bucket_width: None,
                group_by: vec![],
                ..request.clone()
            })
            .await
            .unwrap();
        whole_day.record(micros(t)).unwrap();
        let t = Instant::now();
        client
            .get_experiment(GetExperimentRequest {
                tenant_id: TENANT.into(),
                experiment_id: "global".into(),
                metrics: vec![
                    "conversion_rate".into(),
                    "revenue_per_customer".into(),
                    "nps".into(),
                ],
                ..GetExperimentRequest::default()
            })
            .await
            .unwrap();
        experiment.record(micros(t)).unwrap();
    }
    println!("| Query | n | p50 | p99 | p99.9 | max |");
    println!("|---|---|---|---|---|---|");
    percentiles(
        &format!("5 metrics × 24 hourly buckets by channel ({series} series)"),
        &by_hour,
    );
    percentiles("5 metrics, one 24 h bucket", &whole_day);
    percentiles("GetExperiment global, 3 metrics", &experiment);
    node.stop().await;
}

fn micros(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}

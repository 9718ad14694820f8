//! No double counting and no loss when `iee-kpi` is SIGKILLed mid-stream: events flow through a
//! real `iee-ingest` into the shard logs of a private Redis while the KPI process is killed
//! twice and restarted; the final aggregates equal the counts computed from what was sent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iee_api::{
    ingest::{EventStatus, IngestRequest, TouchpointApi, TouchpointClient},
    kpi::{KpiApi, KpiClient, QueryMetricsRequest},
    pb::common::{Channel, Event, Money, SurveyAnswer, SurveyKind},
};
use iee_test_support::{RedisServer, ServerProcess, wait_until};

const TENANT: &str = "acme";
const CUSTOMERS: u64 = 200;
const BATCHES: u64 = 60;
const PER_BATCH: u64 = 50;

/// What was sent, counted by hand.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    events: u64,
    promoters: u64,
    passives: u64,
    detractors: u64,
    orders: u64,
    revenue: i64,
}

impl Expected {
    fn answers(&self) -> u64 {
        self.promoters + self.passives + self.detractors
    }

    #[allow(clippy::cast_precision_loss)]
    fn nps(&self) -> f64 {
        100.0 * (self.promoters as f64 - self.detractors as f64) / self.answers() as f64
    }
}

/// What the KPI service has committed so far.
#[derive(Debug, Default)]
struct Measured {
    events: u64,
    answers: u64,
    nps: f64,
    orders: u64,
    revenue: i64,
}

fn event(i: u64, at: SystemTime) -> Event {
    let customer = format!("c-{}", i % CUSTOMERS);
    let mut event = Event {
        event_id: format!("e-{i}"),
        tenant_id: TENANT.into(),
        customer_id: customer,
        channel: Channel::Web as i32,
        touchpoint: "home".into(),
        occurred_at: Some(at.into()),
        ..Event::default()
    };
    match i % 3 {
        0 => {
            event.r#type = "survey_response".into();
            event.survey = Some(SurveyAnswer {
                kind: SurveyKind::Nps as i32,
                score: i32::try_from(i % 11).unwrap(),
                survey_id: "relationship".into(),
            });
        }
        1 => {
            event.r#type = "purchase".into();
            event.value = Some(Money {
                amount_minor: i64::try_from(100 + i % 997).unwrap(),
                currency: "EUR".into(),
            });
        }
        _ => event.r#type = "page_view".into(),
    }
    event
}

fn expect(events: &[Event], into: &mut Expected) {
    for event in events {
        into.events += 1;
        if let Some(survey) = &event.survey {
            match survey.score {
                9..=10 => into.promoters += 1,
                7..=8 => into.passives += 1,
                _ => into.detractors += 1,
            }
        }
        if event.r#type == "purchase" {
            into.orders += 1;
            into.revenue += event.value.as_ref().map_or(0, |m| m.amount_minor);
        }
    }
}

fn spawn_kpi(url: &str) -> ServerProcess {
    ServerProcess::spawn(
        "iee-kpi",
        &[
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            url,
            "--metrics-listen",
            "",
        ],
        &[
            ("IEE_CLUSTER__SHARD_COUNT", "16"),
            ("IEE_KPI__PARTITIONS", "4"),
            // Small batches, so a kill lands between commits and within one.
            ("IEE_KPI__BATCH_SIZE", "7"),
            ("IEE_KPI__POLL_BLOCK_MS", "50"),
            ("IEE_KPI__GAUGE_INTERVAL_SECS", "0"),
        ],
    )
}

/// The totals the KPI service has committed so far.
async fn measured(kpi: &KpiClient, start: SystemTime) -> Measured {
    let response = kpi
        .query_metrics(QueryMetricsRequest {
            tenant_id: TENANT.into(),
            metrics: vec![
                "events".into(),
                "nps".into(),
                "average_order_value".into(),
                "revenue".into(),
            ],
            start_time: Some(start.into()),
            end_time: Some((start + Duration::from_secs(2 * 86_400)).into()),
            ..QueryMetricsRequest::default()
        })
        .await
        .unwrap();
    let mut got = Measured::default();
    for series in response.series {
        let Some(point) = series.points.first() else {
            continue;
        };
        match series.metric.as_str() {
            "events" => got.events = point.count,
            "nps" => {
                got.answers = point.count;
                got.nps = point.value;
            }
            "average_order_value" => got.orders = point.count,
            #[allow(clippy::cast_possible_truncation)]
            "revenue" => got.revenue = point.value.round() as i64,
            _ => {}
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_kpi_process_mid_stream_neither_loses_nor_double_counts() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ingest = ServerProcess::spawn(
        "iee-ingest",
        &[
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            &url,
            "--metrics-listen",
            "",
        ],
        &[("IEE_CLUSTER__SHARD_COUNT", "16")],
    );
    let touchpoint = TouchpointClient::connect(ingest.endpoint()).await.unwrap();
    // Every event in one day bucket, whatever the time of day the test runs.
    let now = SystemTime::now();
    let day = now.duration_since(UNIX_EPOCH).unwrap().as_secs() / 86_400 * 86_400;
    let start = UNIX_EPOCH + Duration::from_secs(day);
    let at = start + Duration::from_secs(now.duration_since(start).unwrap().as_secs() / 2);

    let mut kpi_process = spawn_kpi(&url);
    let mut kpi = KpiClient::connect(kpi_process.endpoint()).await.unwrap();
    let mut expected = Expected::default();
    let mut kills = 0;
    for batch in 0..BATCHES {
        let events: Vec<Event> = (batch * PER_BATCH..(batch + 1) * PER_BATCH)
            .map(|i| event(i, at))
            .collect();
        expect(&events, &mut expected);
        let response = touchpoint.ingest(IngestRequest { events }).await.unwrap();
        assert!(
            response
                .results
                .iter()
                .all(|r| r.status == EventStatus::Accepted as i32),
            "{response:?}"
        );
        // Kill while the service is part-way through what was sent, twice.
        if kills < 2 && batch % 20 == 19 {
            let sent = expected.events;
            wait_until(
                Duration::from_secs(30),
                "the kpi service is part-way",
                || {
                    let kpi = kpi.clone();
                    async move {
                        let got = measured(&kpi, start).await.events;
                        (got > 0).then_some(got)
                    }
                },
            )
            .await;
            let partial = measured(&kpi, start).await.events;
            assert!(partial <= sent, "{partial} counted of {sent} sent");
            eprintln!("killing iee-kpi with {partial} of {sent} events counted");
            let status = kpi_process.signal_and_wait("KILL").await;
            assert!(!status.success());
            kills += 1;
            kpi_process = spawn_kpi(&url);
            kpi = KpiClient::connect(kpi_process.endpoint()).await.unwrap();
        }
    }
    assert_eq!(kills, 2);
    let total = expected.events;
    wait_until(Duration::from_secs(60), "every event is measured", || {
        let kpi = kpi.clone();
        async move { (measured(&kpi, start).await.events >= total).then_some(()) }
    })
    .await;
    // Settled: a little later nothing more is counted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = measured(&kpi, start).await;
    assert_eq!(got.events, expected.events);
    assert_eq!(got.answers, expected.answers(), "NPS answers");
    assert!(
        (got.nps - expected.nps()).abs() < 1e-9,
        "NPS {} measured, {} sent",
        got.nps,
        expected.nps()
    );
    assert_eq!(got.orders, expected.orders);
    assert_eq!(got.revenue, expected.revenue);
}

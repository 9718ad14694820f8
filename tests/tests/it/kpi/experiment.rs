//! The loop measured: decisions made by `iee-decide` reach `iee-kpi` as exposure records in the
//! shard logs, conversions and clicks reported through ingest and `ReportOutcome` are attributed
//! to them, and `GetExperiment` compares the global holdout with treatment — every number equal
//! to what the test counted itself.

use std::{collections::HashMap, time::Duration, time::SystemTime};

use iee_api::{
    decide::{DecideApi, DecideRequest, Direction, OutcomeKind, ReportOutcomeRequest},
    kpi::{
        Dimension, DimensionFilter, GetExperimentRequest, KpiApi, KpiClient, QueryMetricsRequest,
    },
    pb::common::{Channel, CustomerRef, Event, Money},
};
use iee_test_support::wait_until;
use iee_tests::LoopServices;

const TENANT: &str = "shop";
const CUSTOMERS: usize = 240;

const CONFIG: &str = "tenant: shop
exploration: {mode: greedy}
holdouts: {salt: kpi-test, global_share: 0.3}
actions:
  - {id: banner, channels: [web], direction: inbound, value: 1}
";

fn purchase(customer: &str, amount: i64) -> Event {
    Event {
        event_id: format!("buy-{customer}"),
        tenant_id: TENANT.into(),
        customer_id: customer.into(),
        r#type: "purchase".into(),
        channel: Channel::Web as i32,
        touchpoint: "checkout".into(),
        occurred_at: Some(SystemTime::now().into()),
        value: Some(Money {
            amount_minor: amount,
            currency: "EUR".into(),
        }),
        ..Event::default()
    }
}

/// Per arm: customers, converted customers, revenue.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Tally {
    customers: u64,
    converted: u64,
    revenue: i64,
}

async fn decisions_measured(kpi: &KpiClient, start: SystemTime) -> u64 {
    kpi.query_metrics(QueryMetricsRequest {
        tenant_id: TENANT.into(),
        metrics: vec!["decisions".into()],
        start_time: Some(start.into()),
        ..QueryMetricsRequest::default()
    })
    .await
    .map(|r| {
        r.series
            .first()
            .and_then(|s| s.points.first())
            .map_or(0, |p| p.count)
    })
    .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_holdout_is_compared_with_treatment_on_attributed_conversions() {
    let services = LoopServices::start(1, &[], &[("IEE_DECIDE__PROACTIVE", "false")]).await;
    services.configure(TENANT, CONFIG).await;
    let decide = services.decide_client().await;
    let start = SystemTime::now() - Duration::from_secs(120);
    let mut arms: HashMap<String, Tally> = HashMap::new();
    let mut clicks = 0;
    let mut purchases = Vec::new();
    for i in 0..CUSTOMERS {
        let customer = format!("k-{i}");
        let decision = decide
            .decide(DecideRequest {
                customer: Some(CustomerRef {
                    tenant_id: TENANT.into(),
                    customer_id: customer.clone(),
                    anonymous_id: String::new(),
                }),
                channel: Channel::Web as i32,
                touchpoint: "home".into(),
                direction: Direction::Inbound as i32,
                max_actions: 1,
                ..DecideRequest::default()
            })
            .await
            .unwrap();
        let arm = if decision.holdout {
            "control"
        } else {
            "treatment"
        };
        assert_eq!(decision.holdout, decision.actions.is_empty());
        let tally = arms.entry(arm.to_owned()).or_default();
        tally.customers += 1;
        // Treated customers click every other time and buy after a click; the holdout buys
        // one time in five on its own.
        let buys = if decision.holdout {
            i % 5 == 0
        } else if i % 2 == 0 {
            decide
                .report_outcome(ReportOutcomeRequest {
                    tenant_id: TENANT.into(),
                    decision_id: decision.decision_id.clone(),
                    action_id: "banner".into(),
                    kind: OutcomeKind::Click as i32,
                    ..ReportOutcomeRequest::default()
                })
                .await
                .unwrap();
            clicks += 1;
            true
        } else {
            false
        };
        if buys {
            let amount = 1_000 + 10 * i64::try_from(i).unwrap();
            tally.converted += 1;
            tally.revenue += amount;
            purchases.push(purchase(&customer, amount));
        }
    }
    services.send(purchases).await;

    let kpi = services.kpi_client().await;
    let decided = u64::try_from(CUSTOMERS).unwrap();
    wait_until(
        Duration::from_secs(30),
        "every decision is measured",
        || {
            let kpi = kpi.clone();
            async move { (decisions_measured(&kpi, start).await >= decided).then_some(()) }
        },
    )
    .await;
    let metrics: Vec<String> = [
        "customer_conversion_rate",
        "revenue_per_customer",
        "conversion_rate",
    ]
    .map(str::to_owned)
    .to_vec();
    // Purchases are folded after the decisions of their shards; wait for the last one.
    let converted: u64 = arms.values().map(|t| t.converted).sum();
    let experiment = wait_until(
        Duration::from_secs(30),
        "every purchase is attributed",
        || {
            let (kpi, metrics) = (kpi.clone(), metrics.clone());
            async move {
                let experiment = kpi
                    .get_experiment(GetExperimentRequest {
                        tenant_id: TENANT.into(),
                        experiment_id: "global".into(),
                        metrics,
                        ..GetExperimentRequest::default()
                    })
                    .await
                    .ok()?
                    .experiment?;
                let measured: u64 = experiment
                    .arms
                    .iter()
                    .map(|a| {
                        let conversions = a.metrics[0].value * a.metrics[0].count as f64;
                        conversions.round() as u64
                    })
                    .sum();
                (measured == converted).then_some(experiment)
            }
        },
    )
    .await;
    assert_eq!(experiment.control_arm, "control");
    let names: Vec<&str> = experiment.arms.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["control", "treatment"]);
    for arm in &experiment.arms {
        let tally = arms[&arm.name];
        assert_eq!(arm.customers, tally.customers, "{}", arm.name);
        assert_eq!(arm.decisions, tally.customers, "{}", arm.name);
        let conversion = &arm.metrics[0];
        #[allow(clippy::cast_precision_loss)]
        let expected = tally.converted as f64 / tally.customers as f64;
        assert!(
            (conversion.value - expected).abs() < 1e-12,
            "{arm:?} vs {tally:?}"
        );
        let revenue = &arm.metrics[1];
        #[allow(clippy::cast_precision_loss)]
        let per_customer = tally.revenue as f64 / tally.customers as f64;
        assert!(
            (revenue.value - per_customer).abs() < 1e-9,
            "{arm:?} vs {tally:?}"
        );
        // One decision per customer: the decision-level rate is the customer-level one.
        assert!((arm.metrics[2].value - expected).abs() < 1e-12, "{arm:?}");
        let share = if arm.name == "control" { 0.3 } else { 0.7 };
        assert!((arm.allocation - share).abs() < 1e-12, "{arm:?}");
    }
    let treatment = &experiment.arms[1].metrics[0];
    let uplift = treatment.uplift.as_ref().unwrap();
    // Treatment converts at 0.5, the holdout at about 0.2: the interval excludes 0.
    assert!(uplift.absolute > 0.0, "{uplift:?}");
    assert!(uplift.absolute_interval.unwrap().lower > 0.0, "{uplift:?}");
    assert!(experiment.sample_ratio_p_value > 0.001, "{experiment:?}");

    // Clicks per returned action, by action: only the treated customers saw `banner`.
    let ctr = kpi
        .query_metrics(QueryMetricsRequest {
            tenant_id: TENANT.into(),
            metrics: vec!["click_through_rate".into()],
            start_time: Some(start.into()),
            group_by: vec![Dimension::Action as i32],
            filters: vec![DimensionFilter {
                dimension: Dimension::Channel as i32,
                values: vec!["CHANNEL_WEB".into()],
            }],
            ..QueryMetricsRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(ctr.series.len(), 1, "{ctr:?}");
    assert_eq!(ctr.series[0].group[0].value, "banner");
    let point = &ctr.series[0].points[0];
    assert_eq!(point.count, arms["treatment"].customers);
    #[allow(clippy::cast_precision_loss)]
    let expected = f64::from(clicks) / arms["treatment"].customers as f64;
    assert!((point.value - expected).abs() < 1e-12, "{point:?}");
}

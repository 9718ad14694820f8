//! `GetExperiment`: arms and their order, counts, metrics, uplift against control, the sample
//! ratio check, the default range, and unknown experiments.

use iee_api::kpi::{Experiment, GetExperimentRequest};

use super::*;
use crate::fields::stat;
use crate::query::get_experiment;
use crate::stats::{Mean, Proportion, mean_uplift, proportion_uplift};

/// Planned 50/50 allocation and first/last assignment marks for experiment `exp`.
fn plan_marks(data: &mut Data, first: i64, last: i64) {
    data.mark("exp|exp|first", MarkOp::Min, (first * 1000) as f64)
        .mark("exp|exp|last", MarkOp::Max, (last * 1000) as f64)
        .mark("arm|exp/control|alloc", MarkOp::Set, 0.5)
        .mark("arm|exp/treatment|alloc", MarkOp::Set, 0.5);
}

/// Asks for experiment `exp`.
fn ask(metrics: &[&str]) -> GetExperimentRequest {
    GetExperimentRequest {
        tenant_id: TENANT.into(),
        experiment_id: "exp".into(),
        metrics: metrics.iter().map(|&m| m.to_owned()).collect(),
        ..GetExperimentRequest::default()
    }
}

/// The experiment of a request that must succeed.
async fn experiment(reader: &Reader, request: GetExperimentRequest) -> Experiment {
    get_experiment(reader, request, now())
        .await
        .unwrap()
        .experiment
        .unwrap()
}

#[tokio::test]
async fn arms_are_compared_against_control() {
    let store = store();
    let mut a = Data::default();
    plan_marks(&mut a, DAY0 + 2 * HOUR, DAY0 + 5 * DAY);
    let mut b = Data::default();
    plan_marks(&mut b, DAY0 + HOUR, DAY0 + 3 * DAY);
    let (control, treatment) = (
        web("").with_arm("exp", "control"),
        web("").with_arm("exp", "treatment"),
    );
    let t = DAY0 + 3 * HOUR;
    // Control converts 30 of 200 decisions, treatment 50; revenue per customer 50 vs 70.
    a.add(t, stat::ASSIGNED, &control, 100.0)
        .add(t, stat::DECISIONS, &control, 200.0)
        .add(t, stat::CONVERTED, &control, 30.0)
        .add(t, stat::REVENUE, &control, 5_000.0)
        .add(t, stat::ASSIGNED_REVENUE_SUMSQ, &control, 1_000_000.0);
    b.add(t + DAY, stat::ASSIGNED, &treatment, 100.0)
        .add(t + DAY, stat::DECISIONS, &treatment, 200.0)
        .add(t + DAY, stat::CONVERTED, &treatment, 50.0)
        .add(t + DAY, stat::REVENUE, &treatment, 7_000.0)
        .add(
            t + DAY,
            stat::ASSIGNED_REVENUE_SUMSQ,
            &treatment,
            1_500_000.0,
        )
        // An arm seen only in the rows, an experiment whose id extends this one's, and the
        // overall row: only the first belongs to `exp`.
        .add(
            t,
            stat::DECISIONS,
            &web("").with_arm("exp", "b-variant"),
            3.0,
        )
        .add(
            t,
            stat::DECISIONS,
            &web("").with_arm("exp/x", "control"),
            1_000.0,
        )
        .add(t, stat::DECISIONS, &web(""), 5_000.0);
    commit(&store, 0, &a).await;
    commit(&store, 1, &b).await;
    let reader = reader(&store);

    let exp = experiment(&reader, ask(&[])).await;
    assert_eq!(
        (exp.experiment_id.as_str(), exp.control_arm.as_str()),
        ("exp", "control")
    );
    assert_eq!(exp.first_assigned_at, Some(at(DAY0 + HOUR)));
    assert_eq!(exp.last_assigned_at, Some(at(DAY0 + 5 * DAY)));
    let arms: Vec<(&str, f64, u64, u64)> = exp
        .arms
        .iter()
        .map(|a| (a.name.as_str(), a.allocation, a.customers, a.decisions))
        .collect();
    assert_eq!(
        arms,
        [
            ("control", 0.5, 100, 200),
            ("b-variant", 0.0, 0, 3),
            ("treatment", 0.5, 100, 200)
        ]
    );
    // An arm without a planned allocation makes the check impossible.
    assert_eq!(exp.sample_ratio_p_value, 1.0);

    let names: Vec<&str> = exp.arms[0]
        .metrics
        .iter()
        .map(|m| m.metric.as_str())
        .collect();
    assert_eq!(names, ["conversion_rate", "revenue_per_customer"]);
    let control = &exp.arms[0].metrics;
    assert_eq!((control[0].value, control[0].count), (0.15, 200));
    assert_eq!((control[1].value, control[1].count), (50.0, 100));
    assert!(
        control
            .iter()
            .all(|m| m.uplift.is_none() && m.interval.is_some())
    );

    let treated = &exp.arms[2].metrics;
    assert_eq!((treated[0].value, treated[1].value), (0.25, 70.0));
    let conversion = treated[0].uplift.clone().unwrap();
    close(conversion.absolute, 0.1, 1e-12);
    let expected =
        proportion_uplift(&Proportion::new(50, 200), &Proportion::new(30, 200), 0.95).unwrap();
    assert_eq!(conversion.method, "newcombe");
    assert_eq!(conversion.p_value, expected.p_value.unwrap());
    assert_eq!(
        conversion.absolute_interval.map(|i| i.lower),
        expected.absolute_interval.map(|i| i.lower)
    );
    let revenue = treated[1].uplift.clone().unwrap();
    let expected = mean_uplift(
        &Mean::from_sums(100, 7_000.0, 1_500_000.0),
        &Mean::from_sums(100, 5_000.0, 1_000_000.0),
        0.95,
    )
    .unwrap();
    assert_eq!(
        (revenue.absolute, revenue.method.as_str()),
        (20.0, "welch_t")
    );
    close(revenue.relative, 0.4, 1e-12);
    assert_eq!(revenue.p_value, expected.p_value.unwrap());
    // The arm without customers has no revenue per customer: it keeps its place, empty.
    let empty = &exp.arms[1].metrics[1];
    assert_eq!(
        (empty.value, empty.count, &empty.interval, &empty.uplift),
        (0.0, 0, &None, &None)
    );
}

#[tokio::test]
async fn nps_uplift_is_on_the_hundred_point_scale() {
    let store = store();
    let mut data = Data::default();
    plan_marks(&mut data, DAY0, DAY0);
    for (arm, p, s, d) in [
        ("control", 40.0, 30.0, 30.0),
        ("treatment", 50.0, 30.0, 20.0),
    ] {
        let dims = app("").with_arm("exp", arm);
        data.add(DAY0, stat::NPS_PROMOTERS, &dims, p)
            .add(DAY0, stat::NPS_PASSIVES, &dims, s)
            .add(DAY0, stat::NPS_DETRACTORS, &dims, d)
            .add(DAY0, stat::DECISIONS, &dims, 10.0);
    }
    commit(&store, 0, &data).await;

    let exp = experiment(&reader(&store), ask(&["nps", "decisions"])).await;
    let treated = &exp.arms[1].metrics;
    close(exp.arms[0].metrics[0].value, 10.0, 1e-9);
    assert_eq!((treated[0].count, treated[1].value), (100, 10.0));
    close(treated[0].value, 30.0, 1e-9);
    // The reference values of docs/kpi-statistics.md.
    let uplift = treated[0].uplift.clone().unwrap();
    close(uplift.absolute, 20.0, 1e-9);
    let interval = uplift.absolute_interval.unwrap();
    close(interval.lower, -2.347, 1e-3);
    close(interval.upper, 42.347, 1e-3);
    close(uplift.p_value, 0.07941, 1e-5);
    assert_eq!(uplift.method, "nps_delta");
    assert!(treated[1].uplift.is_none(), "counts have no uplift");
}

/// The sample ratio p-value of a 50/50 experiment with the given customers per arm.
async fn srm_p_value(control: f64, treatment: f64) -> f64 {
    let store = store();
    let mut data = Data::default();
    plan_marks(&mut data, DAY0, DAY0 + DAY);
    data.add(
        DAY0,
        stat::ASSIGNED,
        &web("").with_arm("exp", "control"),
        control,
    )
    .add(
        DAY0 + DAY,
        stat::ASSIGNED,
        &app("").with_arm("exp", "treatment"),
        treatment,
    );
    commit(&store, 1, &data).await;
    experiment(&reader(&store), ask(&["customers"]))
        .await
        .sample_ratio_p_value
}

#[tokio::test]
async fn skewed_split_flags_a_sample_ratio_mismatch() {
    // χ² = 40 on 1 df.
    let p = srm_p_value(600.0, 400.0).await;
    assert!(p < 0.001, "{p}");
}

#[tokio::test]
async fn even_split_passes_the_sample_ratio_check() {
    // χ² = 0.4 on 1 df: p = 0.527.
    let p = srm_p_value(510.0, 490.0).await;
    assert!(p > 0.01, "{p}");
    close(p, 0.5271, 1e-4);
}

#[tokio::test]
async fn range_defaults_to_the_day_of_the_first_assignment() {
    let store = store();
    let mut data = Data::default();
    plan_marks(&mut data, DAY0 + 2 * DAY + 5 * HOUR, DAY0 + 3 * DAY);
    let control = web("").with_arm("exp", "control");
    data.add(DAY0 + DAY + 23 * HOUR, stat::DECISIONS, &control, 10.0)
        .add(DAY0 + 2 * DAY + HOUR, stat::DECISIONS, &control, 1.0)
        .add(DAY0 + 3 * DAY, stat::DECISIONS, &control, 100.0)
        .add(DAY0 + 11 * DAY, stat::DECISIONS, &control, 1_000.0);
    commit(&store, 0, &data).await;
    let reader = reader(&store);

    let exp = experiment(&reader, ask(&["decisions"])).await;
    assert_eq!(exp.arms[0].decisions, 101);
    // An explicit range is rounded out to whole days too.
    let mut request = ask(&["decisions"]);
    request.start_time = Some(at(DAY0 + DAY + 12 * HOUR));
    request.end_time = Some(at(DAY0 + 2 * DAY + MIN));
    assert_eq!(experiment(&reader, request).await.arms[0].decisions, 11);
}

#[tokio::test]
async fn unknown_experiment_is_not_found() {
    let store = store();
    let mut data = Data::default();
    plan_marks(&mut data, DAY0, DAY0);
    commit(&store, 0, &data).await;
    let reader = reader(&store);
    for id in ["exp2", "ex"] {
        let mut request = ask(&[]);
        request.experiment_id = id.into();
        let err = get_experiment(&reader, request, now()).await.unwrap_err();
        assert!(
            matches!(&err, KpiError::NotFound(message) if message.contains(&format!("{id:?}"))),
            "{err:?}"
        );
    }
    assert!(get_experiment(&reader, ask(&[]), now()).await.is_ok());
}

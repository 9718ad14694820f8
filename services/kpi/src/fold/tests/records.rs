//! Which records count, customer-days, cohorts, orders, churn, and the expansion of
//! observations into bucket increments.

use std::collections::HashMap;

use iee_store::{Granularity, KpiIncrement, MarkOp};
use prost::Message;

use super::support::{
    DAY, HOUR, Harness, MIN, T0, decision, ev, f, map, purchase, rec, survey, timed, view,
};
use crate::fold::{CustomerState, FoldConfig, Folded, Observations, Vocabulary};

#[test]
fn forwarded_merge_erase_and_eventless_records_are_skipped() {
    let mut h = Harness::new();
    let mut forwarded = view(T0);
    forwarded.forwarded_from_shard = Some(3);
    let mut merged = rec(ev("identify", T0));
    merged.merged_profile = vec![1, 2, 3];
    let mut erase = view(T0);
    erase.erase_profile = true;
    let eventless = iee_api::pb::common::LogRecord::default();
    assert_eq!(h.fold(&forwarded), Folded::Skipped("forwarded"));
    assert_eq!(h.fold(&merged), Folded::Skipped("merge"));
    assert_eq!(h.fold(&erase), Folded::Skipped("erase"));
    assert_eq!(h.fold(&eventless), Folded::Skipped("no event"));
    assert!(h.out.is_empty());
    assert_eq!(h.state, CustomerState::default());
}

#[test]
fn decisions_are_not_interactions() {
    let mut h = Harness::new();
    h.feed(&[decision("d1", T0, &[], &[])]);
    let got = h.take();
    assert_eq!(
        got,
        map([((T0, f("dec.n", "", "")), 1.0)]),
        "no ev, session, day or cohort"
    );
    assert_eq!(h.state.first_seen, None);
}

#[test]
fn active_customer_counts_once_per_utc_day_at_its_first_interaction() {
    let mut h = Harness::new();
    h.feed(&[view(T0), view(T0 + HOUR), view(T0 + 11 * HOUR)]);
    // 12 hours after noon is the next UTC day.
    h.feed(&[view(T0 + 12 * HOUR)]);
    assert_eq!(
        timed(&h.take(), &["cust."]),
        map([
            ((T0, f("cust.n", "", "")), 1.0),
            ((T0 + 12 * HOUR, f("cust.n", "", "")), 1.0),
        ])
    );
}

#[test]
fn cohort_counts_once_and_each_retention_week_once() {
    let mut h = Harness::new();
    h.feed(&[
        view(T0),
        view(T0 + 8 * DAY),
        view(T0 + 9 * DAY),
        view(T0 + 15 * DAY),
        // Week 14 is past the last retention week.
        view(T0 + 100 * DAY),
    ]);
    assert_eq!(
        timed(&h.take(), &["coh.", "ret."]),
        map([
            ((T0, f("coh.n", "", "")), 1.0),
            ((T0, f("ret.1", "", "")), 1.0),
            ((T0, f("ret.2", "", "")), 1.0),
        ])
    );
}

#[test]
fn late_interaction_counts_in_its_own_bucket_without_moving_the_cohort() {
    let mut h = Harness::new();
    h.feed(&[view(T0)]);
    h.take();
    h.feed(&[view(T0 - DAY)]);
    assert_eq!(h.take(), map([((T0 - DAY, f("ev", "", "")), 1.0)]));
    assert_eq!(h.state.first_seen, Some(T0));
    // Still week 1 of the original cohort.
    h.feed(&[view(T0 + 7 * DAY)]);
    assert_eq!(
        timed(&h.take(), &["coh.", "ret."]),
        map([((T0, f("ret.1", "", "")), 1.0)])
    );
}

#[test]
fn orders_add_revenue_and_the_day_revenue_square() {
    let mut h = Harness::new();
    h.feed(&[
        view(T0),
        purchase(Some(100), T0 + HOUR),
        purchase(Some(300), T0 + 2 * HOUR),
    ]);
    // A conversion without a value is not an order.
    h.feed(&[purchase(None, T0 + 3 * HOUR)]);
    let got = h.take();
    assert_eq!(
        timed(&got, &["ord.", "rev.", "rpc."]),
        map([
            ((T0, f("rpc.q", "", "")), 400.0 * 400.0),
            ((T0 + HOUR, f("ord.n", "", "")), 1.0),
            ((T0 + HOUR, f("rev.q", "", "")), 10_000.0),
            ((T0 + HOUR, f("rev.s", "", "")), 100.0),
            ((T0 + 2 * HOUR, f("ord.n", "", "")), 1.0),
            ((T0 + 2 * HOUR, f("rev.q", "", "")), 90_000.0),
            ((T0 + 2 * HOUR, f("rev.s", "", "")), 300.0),
        ])
    );
}

#[test]
fn churn_counts_once_per_customer_day() {
    let mut h = Harness::new();
    h.feed(&[
        view(T0),
        rec(ev("custom.churn", T0 + HOUR)),
        rec(ev("subscription_cancel", T0 + 2 * HOUR)),
    ]);
    assert_eq!(
        timed(&h.take(), &["churn."]),
        map([((T0, f("churn.k", "", "")), 1.0)])
    );
}

#[test]
fn state_survives_encoding() {
    let mut h = Harness::new();
    h.feed(&[
        decision("d1", T0, &["a"], &[("global", "treatment")]),
        view(T0 + MIN),
        survey(iee_api::pb::common::SurveyKind::Nps, 3, T0 + 2 * MIN),
        purchase(Some(250), T0 + 3 * MIN),
    ]);
    let bytes = h.state.encode_to_vec();
    let decoded = CustomerState::decode(bytes.as_slice()).expect("decodes");
    assert_eq!(decoded, h.state);
    assert_eq!(decoded.assignments.len(), 1);
    assert_eq!(decoded.decisions.len(), 1);
}

#[test]
fn increments_roll_up_sum_and_drop_expired_buckets() {
    let config = FoldConfig::default();
    let now_ms = (T0 + 3 * DAY) * 1_000;
    let mut out = Observations::new();
    // Three days old: its minute bucket (kept two days) has expired.
    out.add("acme", T0 + 5, "ev|1|home|0||".into(), 1.0);
    out.add("acme", T0 + 50, "ev|1|home|0||".into(), 2.0);
    out.mark("acme", "exp|global|first".into(), MarkOp::Min, 9.0);
    out.mark("acme", "exp|global|first".into(), MarkOp::Min, 4.0);
    let (increments, marks) = out.into_increments(&config, now_ms);
    let hour = Granularity::Hour.bucket_of(T0);
    let day = Granularity::Day.bucket_of(T0);
    let inc = |granularity, bucket: i64, retention: i64| KpiIncrement {
        tenant_id: "acme".into(),
        granularity,
        bucket,
        field: "ev|1|home|0||".into(),
        delta: 3.0,
        expires_at_ms: (bucket + retention) * 1_000,
    };
    assert_eq!(
        increments,
        vec![
            inc(Granularity::Hour, hour, 35 * DAY),
            inc(Granularity::Day, day, 400 * DAY)
        ]
    );
    assert_eq!(marks.len(), 1);
    assert_eq!((marks[0].op, marks[0].value), (MarkOp::Min, 4.0));
    // Fresh, the minute bucket is there.
    let mut out = Observations::new();
    out.add("acme", T0 + 5, "ev|1|home|0||".into(), 1.0);
    let (increments, _) = out.into_increments(&config, T0 * 1_000);
    assert_eq!(increments.len(), 3);
    assert_eq!(increments[0].granularity, Granularity::Minute);
    assert_eq!(increments[0].bucket, Granularity::Minute.bucket_of(T0));
}

#[test]
fn touchpoints_past_the_cap_fold_into_other() {
    let config = FoldConfig {
        max_touchpoints: 2,
        ..FoldConfig::default()
    };
    let mut vocabulary = Vocabulary::new(&config);
    let mut out = Observations::new();
    assert!(!vocabulary.is_loaded("acme"));
    vocabulary.load(
        "acme",
        &[
            HashMap::from([("tp|home".to_owned(), 1.0)]),
            HashMap::from([("tp|home".to_owned(), 1.0), ("act|a".to_owned(), 1.0)]),
        ],
    );
    assert!(vocabulary.is_loaded("acme"));
    assert_eq!(
        vocabulary.admit_touchpoint("acme", "home", &mut out),
        "home"
    );
    assert_eq!(
        vocabulary.admit_touchpoint("acme", "cart", &mut out),
        "cart"
    );
    assert_eq!(
        vocabulary.admit_touchpoint("acme", "help", &mut out),
        "other"
    );
    assert_eq!(vocabulary.admit_touchpoint("acme", "", &mut out), "");
    assert_eq!(vocabulary.admit_action("acme", "a", &mut out), "a");
    // Only the newly admitted name is marked.
    let marks: Vec<(String, MarkOp, f64)> = out
        .marks()
        .into_iter()
        .map(|m| (m.field, m.op, m.value))
        .collect();
    assert_eq!(marks, vec![("tp|cart".to_owned(), MarkOp::Set, 1.0)]);
    // Folding an event at a touchpoint past the cap counts it on the `other` row.
    let mut h = Harness::with(config);
    let mut far = ev("page_view", T0);
    far.touchpoint = "faq".into();
    h.feed(&[view(T0), rec(ev("page_view", T0)), rec(far.clone())]);
    far.touchpoint = "search".into();
    h.feed(&[rec(far)]);
    let events: Vec<String> = h
        .take()
        .into_keys()
        .filter(|(_, field)| field.starts_with("ev|"))
        .map(|(_, field)| field)
        .collect();
    assert_eq!(
        events,
        vec!["ev|1|faq|0||", "ev|1|home|0||", "ev|1|other|0||"]
    );
}

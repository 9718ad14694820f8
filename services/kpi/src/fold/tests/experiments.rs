//! Experiment assignments and arm rows.

use iee_store::MarkOp;

use super::support::{DAY, Harness, MIN, T0, decision, ev, f, map, purchase, rec, timed, view};
use crate::fold::FoldConfig;

/// The arm row of the experiments most tests use.
const ARM: &str = "global/treatment";

#[test]
fn arm_rows_appear_only_after_assignment() {
    let mut h = Harness::new();
    h.feed(&[view(T0)]);
    assert_eq!(
        timed(&h.take(), &["ev"]),
        map([((T0, f("ev", "", "")), 1.0)])
    );
    let at = T0 + MIN;
    h.feed(&[decision("d1", at, &["a"], &[("global", "treatment")])]);
    let marks: Vec<(String, MarkOp, f64)> = h
        .out
        .marks()
        .into_iter()
        .map(|m| (m.field, m.op, m.value))
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let at_ms = (at * 1_000) as f64;
    assert_eq!(
        marks,
        vec![
            ("act|a".to_owned(), MarkOp::Set, 1.0),
            ("arm|global/treatment|alloc".to_owned(), MarkOp::Set, 0.5),
            ("exp|global|first".to_owned(), MarkOp::Min, at_ms),
            ("exp|global|last".to_owned(), MarkOp::Max, at_ms),
        ]
    );
    assert_eq!(
        h.take(),
        map([
            ((at, f("act.n", "a", "")), 1.0),
            ((at, f("act.n", "a", ARM)), 1.0),
            ((at, f("dec.n", "a", "")), 1.0),
            ((at, f("dec.n", "a", ARM)), 1.0),
            ((at, f("xcust.n", "a", ARM)), 1.0),
        ])
    );
    h.feed(&[view(T0 + 2 * MIN)]);
    assert_eq!(
        timed(&h.take(), &["ev"]),
        map([
            ((T0 + 2 * MIN, f("ev", "a", "")), 1.0),
            ((T0 + 2 * MIN, f("ev", "a", ARM)), 1.0),
        ])
    );
}

#[test]
fn a_customer_keeps_the_first_arm_of_an_experiment() {
    let mut h = Harness::new();
    h.feed(&[
        decision("d1", T0, &[], &[("global", "treatment")]),
        decision("d2", T0 + MIN, &[], &[("global", "control")]),
    ]);
    assert_eq!(
        h.take(),
        map([
            ((T0, f("dec.n", "", "")), 1.0),
            ((T0, f("dec.n", "", ARM)), 1.0),
            ((T0, f("xcust.n", "", ARM)), 1.0),
            ((T0 + MIN, f("dec.n", "", "")), 1.0),
            ((T0 + MIN, f("dec.n", "", "global/control")), 1.0),
        ])
    );
    assert_eq!(h.state.assignments.len(), 1);
}

#[test]
fn assigned_customer_converts_once_and_accumulates_revenue() {
    let mut h = Harness::new();
    h.feed(&[
        purchase(Some(50), T0 - MIN),
        decision("d1", T0, &[], &[("global", "treatment")]),
    ]);
    h.take();
    h.feed(&[
        purchase(Some(100), T0 + MIN),
        purchase(Some(200), T0 + 2 * MIN),
    ]);
    assert_eq!(
        timed(&h.take(), &["xconv.", "xrev.", "rev.s"]),
        map([
            ((T0, f("xconv.k", "", ARM)), 1.0),
            ((T0, f("xrev.q", "", ARM)), 300.0 * 300.0),
            ((T0 + MIN, f("rev.s", "", "")), 100.0),
            ((T0 + MIN, f("rev.s", "", ARM)), 100.0),
            ((T0 + 2 * MIN, f("rev.s", "", "")), 200.0),
            ((T0 + 2 * MIN, f("rev.s", "", ARM)), 200.0),
        ])
    );
}

#[test]
fn assigned_customer_churns_once() {
    let mut h = Harness::new();
    h.feed(&[
        decision("d1", T0, &[], &[("global", "treatment")]),
        rec(ev("custom.churn", T0 + MIN)),
        rec(ev("custom.churn", T0 + DAY)),
    ]);
    assert_eq!(
        timed(&h.take(), &["xchurn.", "churn."]),
        map([
            ((T0, f("xchurn.k", "", ARM)), 1.0),
            ((T0 + MIN, f("churn.k", "", "")), 1.0),
            ((T0 + MIN, f("churn.k", "", ARM)), 1.0),
            ((T0 + DAY, f("churn.k", "", "")), 1.0),
            ((T0 + DAY, f("churn.k", "", ARM)), 1.0),
        ])
    );
}

#[test]
fn experiments_past_the_cap_count_decisions_but_not_customers() {
    let mut h = Harness::with(FoldConfig {
        max_experiments_per_customer: 1,
        ..FoldConfig::default()
    });
    h.feed(&[decision("d1", T0, &[], &[("e1", "t"), ("e2", "c")])]);
    assert_eq!(
        h.take(),
        map([
            ((T0, f("dec.n", "", "")), 1.0),
            ((T0, f("dec.n", "", "e1/t")), 1.0),
            ((T0, f("dec.n", "", "e2/c")), 1.0),
            ((T0, f("xcust.n", "", "e1/t")), 1.0),
        ])
    );
}

#[test]
fn cohort_arm_rows_are_those_of_the_first_interaction() {
    let mut h = Harness::new();
    h.feed(&[
        decision("d1", T0, &[], &[("global", "treatment")]),
        view(T0 + MIN),
        // A later experiment does not join the cohort's rows.
        decision("d2", T0 + DAY, &[], &[("other", "control")]),
        view(T0 + 8 * DAY),
    ]);
    assert_eq!(
        timed(&h.take(), &["coh.", "ret."]),
        map([
            ((T0 + MIN, f("coh.n", "", "")), 1.0),
            ((T0 + MIN, f("coh.n", "", ARM)), 1.0),
            ((T0 + MIN, f("ret.1", "", "")), 1.0),
            ((T0 + MIN, f("ret.1", "", ARM)), 1.0),
        ])
    );
}

//! Decisions, outcomes and conversion attribution.

use super::support::{DAY, Harness, MIN, T0, decision, f, map, outcome, purchase, timed, view};
use crate::fold::{FoldConfig, Folded};

#[test]
fn decision_counts_returned_actions_and_predicted_clv() {
    let mut h = Harness::new();
    let mut record = decision("d1", T0, &["a", "b"], &[]);
    if let Some(exposure) = record.exposure.as_mut() {
        exposure.predicted_clv = Some(500.0);
    }
    h.feed(&[record]);
    assert_eq!(
        h.take(),
        map([
            ((T0, f("act.n", "a", "")), 1.0),
            ((T0, f("act.n", "b", "")), 1.0),
            ((T0, f("clv.n", "a", "")), 1.0),
            ((T0, f("clv.q", "a", "")), 250_000.0),
            ((T0, f("clv.s", "a", "")), 500.0),
            ((T0, f("dec.n", "a", "")), 1.0),
        ])
    );
    let marks: Vec<String> = h.out.marks().into_iter().map(|m| m.field).collect();
    assert!(marks.is_empty(), "take() forgot the marks too: {marks:?}");
}

#[test]
fn conversion_within_the_window_converts_each_decision_once() {
    let mut h = Harness::new();
    h.feed(&[
        decision("d1", T0, &["a"], &[]),
        decision("d2", T0 + MIN, &["b"], &[]),
        purchase(None, T0 + DAY),
        purchase(None, T0 + DAY + MIN),
    ]);
    assert_eq!(
        timed(&h.take(), &["conv."]),
        map([
            ((T0, f("conv.k", "a", "")), 1.0),
            ((T0 + MIN, f("conv.k", "b", "")), 1.0),
        ])
    );
}

#[test]
fn conversion_after_the_window_converts_nothing() {
    let mut h = Harness::new();
    h.feed(&[
        decision("d1", T0, &["a"], &[]),
        purchase(None, T0 + 7 * DAY + 1),
    ]);
    assert_eq!(timed(&h.take(), &["conv."]), map([]));
    assert!(h.state.decisions.is_empty(), "pruned past the window");
    // The window's last second still counts.
    let mut h = Harness::new();
    h.feed(&[
        decision("d1", T0, &["a"], &[]),
        purchase(None, T0 + 7 * DAY),
    ]);
    assert_eq!(
        timed(&h.take(), &["conv."]),
        map([((T0, f("conv.k", "a", "")), 1.0)])
    );
}

#[test]
fn second_click_on_the_same_action_is_not_counted() {
    let mut h = Harness::new();
    h.feed(&[
        decision("d1", T0, &["a", "b"], &[]),
        outcome("d1", "a", "click", T0 + MIN),
        outcome("d1", "a", "click", T0 + 2 * MIN),
        outcome("d1", "b", "click", T0 + 3 * MIN),
        outcome("d1", "a", "accept", T0 + 4 * MIN),
        outcome("d1", "a", "accept", T0 + 5 * MIN),
        // Never returned by d1.
        outcome("d1", "c", "click", T0 + 6 * MIN),
        outcome("d1", "a", "impression", T0 + 7 * MIN),
    ]);
    assert_eq!(
        timed(&h.take(), &["click.", "acc."]),
        map([
            ((T0, f("acc.k", "a", "")), 1.0),
            ((T0, f("click.k", "a", "")), 1.0),
            ((T0, f("click.k", "b", "")), 1.0),
        ])
    );
}

#[test]
fn outcome_of_a_forgotten_decision_counts_on_its_own_event() {
    let mut h = Harness::new();
    h.feed(&[outcome("gone", "x", "click", T0)]);
    let got = h.take();
    assert_eq!(
        timed(&got, &["click.", "ev"]),
        map([
            ((T0, f("click.k", "x", "")), 1.0),
            ((T0, f("ev", "", "")), 1.0)
        ])
    );
}

#[test]
fn convert_outcome_converts_its_decision_and_the_customer_once() {
    let mut h = Harness::new();
    h.feed(&[
        decision("d1", T0, &["a"], &[]),
        outcome("d1", "a", "convert", T0 + MIN),
        purchase(None, T0 + 2 * MIN),
    ]);
    let got = h.take();
    assert_eq!(
        timed(&got, &["conv.", "ses.e"]),
        map([
            ((T0, f("conv.k", "a", "")), 1.0),
            ((T0 + MIN, f("ses.e", "a", "")), 1.0),
        ])
    );
}

#[test]
fn interactions_carry_the_first_action_of_the_latest_decision_in_the_window() {
    let mut h = Harness::new();
    h.feed(&[
        decision("d1", T0, &["a"], &[]),
        decision("d2", T0 + MIN, &["b", "c"], &[]),
        view(T0 + 2 * MIN),
        view(T0 + 8 * DAY),
    ]);
    assert_eq!(
        timed(&h.take(), &["ev"]),
        map([
            ((T0 + 2 * MIN, f("ev", "b", "")), 1.0),
            ((T0 + 8 * DAY, f("ev", "", "")), 1.0),
        ])
    );
}

#[test]
fn repeated_exposure_is_skipped() {
    let mut h = Harness::new();
    h.feed(&[decision("d1", T0, &["a"], &[])]);
    assert_eq!(
        h.fold(&decision("d1", T0, &["a"], &[])),
        Folded::Skipped("duplicate decision")
    );
    assert_eq!(
        timed(&h.take(), &["dec."]),
        map([((T0, f("dec.n", "a", "")), 1.0)])
    );
}

#[test]
fn only_the_newest_decisions_are_remembered() {
    let mut h = Harness::with(FoldConfig {
        max_recent_decisions: 2,
        ..FoldConfig::default()
    });
    h.feed(&[
        decision("d1", T0, &["a"], &[]),
        decision("d2", T0 + MIN, &["b"], &[]),
        decision("d3", T0 + 2 * MIN, &["c"], &[]),
        purchase(None, T0 + 3 * MIN),
    ]);
    assert_eq!(
        timed(&h.take(), &["conv."]),
        map([
            ((T0 + MIN, f("conv.k", "b", "")), 1.0),
            ((T0 + 2 * MIN, f("conv.k", "c", "")), 1.0),
        ])
    );
}

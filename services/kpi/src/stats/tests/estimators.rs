//! Reference values of the single-sample estimators, computed by hand (or from tables), and
//! their edge cases.

use crate::stats::{
    DEFAULT_LEVEL, Interval, Mean, Nps, Proportion, StatsError, check_level, level_or_default,
};

/// Asserts `actual` is within `tolerance` of `expected`.
pub(super) fn assert_close(actual: f64, expected: f64, tolerance: f64) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "expected {expected}, got {actual} (tolerance {tolerance})"
    );
}

fn assert_interval(interval: Interval, lower: f64, upper: f64, tolerance: f64) {
    assert_close(interval.lower, lower, tolerance);
    assert_close(interval.upper, upper, tolerance);
}

#[test]
fn unset_level_defaults_to_95_percent_and_bad_levels_are_refused() {
    assert_eq!(level_or_default(0.0), DEFAULT_LEVEL);
    assert_eq!(level_or_default(0.9), 0.9);
    assert_eq!(check_level(0.9), Ok(0.9));
    for bad in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
        assert!(check_level(bad).is_err(), "level {bad} accepted");
        assert!(Proportion::new(8, 10).wilson(bad).is_none());
        assert!(Mean::from_values(&[1.0, 2.0]).t_interval(bad).is_none());
        assert!(Nps::new(1, 1, 1).interval(bad).is_none());
    }
    let message = check_level(1.5).map_err(|e| e.to_string());
    assert_eq!(
        message,
        Err("confidence level must lie strictly between 0 and 1, got 1.5".to_owned())
    );
}

#[test]
fn wilson_interval_of_8_out_of_10_matches_the_hand_computation() {
    let proportion = Proportion::new(8, 10);
    assert_eq!(proportion.value(), Some(0.8));
    let interval = proportion.wilson(0.95).unwrap();
    assert_interval(interval, 0.4902, 0.9433, 5e-5);
    assert_eq!(interval.level, 0.95);
}

#[test]
fn wilson_interval_stays_inside_0_1_at_the_extremes() {
    let none = Proportion::new(0, 20).wilson(0.95).unwrap();
    assert_eq!(none.lower, 0.0);
    assert!(none.upper > 0.1 && none.upper < 0.2, "{none:?}");
    let all = Proportion::new(20, 20).wilson(0.95).unwrap();
    assert_eq!(all.upper, 1.0);
    assert!(all.lower > 0.8 && all.lower < 0.9, "{all:?}");
}

#[test]
fn proportion_without_trials_or_with_inconsistent_counts_has_no_estimates() {
    assert_eq!(Proportion::default().value(), None);
    assert_eq!(Proportion::default().wilson(0.95), None);
    assert_eq!(Proportion::new(5, 4).value(), None);
    assert_eq!(Proportion::new(5, 4).wilson(0.95), None);
    let mut proportion = Proportion::default();
    proportion.add(true);
    proportion.add(false);
    assert_eq!(proportion, Proportion::new(1, 2));
}

#[test]
fn t_interval_of_1_to_10_matches_the_hand_computation() {
    let values: Vec<f64> = (1..=10).map(f64::from).collect();
    let mean = Mean::from_values(&values);
    assert_eq!(mean.value(), Some(5.5));
    assert_close(mean.variance().unwrap(), 55.0 / 6.0, 1e-12);
    assert_close(mean.std_dev().unwrap(), 3.02765, 5e-6);
    assert_close(mean.standard_error().unwrap(), 0.957427, 5e-7);
    let half = 2.262157 * 0.957427;
    assert_interval(mean.t_interval(0.95).unwrap(), 5.5 - half, 5.5 + half, 1e-5);
}

#[test]
fn mean_needs_two_observations_for_variance_and_interval() {
    assert_eq!(Mean::default().value(), None);
    let one = Mean::from_values(&[3.0]);
    assert_eq!(one.value(), Some(3.0));
    assert_eq!(one.variance(), None);
    assert_eq!(one.t_interval(0.95), None);
    let constant = Mean::from_values(&[4.0, 4.0, 4.0]);
    assert_eq!(constant.variance(), Some(0.0));
    assert_interval(constant.t_interval(0.95).unwrap(), 4.0, 4.0, 0.0);
}

#[test]
fn mean_variance_is_accurate_with_a_large_offset() {
    // Σx² - (Σx)²/n would lose every digit here; Welford keeps them.
    let values: Vec<f64> = (1..=10).map(|i| 1e9 + f64::from(i)).collect();
    let mean = Mean::from_values(&values);
    assert_close(mean.value().unwrap(), 1e9 + 5.5, 1e-6);
    assert_close(mean.variance().unwrap(), 55.0 / 6.0, 1e-6);
}

#[test]
fn nps_scores_fall_into_their_groups() {
    let mut nps = Nps::default();
    for score in 0..=10 {
        nps.add_score(score).unwrap();
    }
    assert_eq!(nps, Nps::new(2, 2, 7));
    assert_eq!(
        nps.add_score(11),
        Err(StatsError::InvalidScore { score: 11 })
    );
    assert_eq!(nps.n(), 11);
}

#[test]
fn nps_value_and_interval_match_the_trinomial_formula() {
    // p = 0.5, d = 0.2: value 30, Var = (0.7 - 0.09) / 100 → se = 100 · sqrt(0.0061).
    let nps = Nps::new(50, 30, 20);
    assert_close(nps.value().unwrap(), 30.0, 1e-12);
    let se = 100.0 * 0.0061_f64.sqrt();
    assert_close(nps.standard_error().unwrap(), se, 1e-12);
    let half = 1.959964 * se;
    assert_interval(nps.interval(0.95).unwrap(), 30.0 - half, 30.0 + half, 1e-4);
}

#[test]
fn nps_edge_cases() {
    let promoters = Nps::new(10, 0, 0);
    assert_eq!(promoters.value(), Some(100.0));
    assert_interval(promoters.interval(0.95).unwrap(), 100.0, 100.0, 0.0);
    let detractors = Nps::new(0, 0, 10);
    assert_eq!(detractors.value(), Some(-100.0));
    assert_interval(detractors.interval(0.95).unwrap(), -100.0, -100.0, 0.0);
    let passives = Nps::new(0, 10, 0);
    assert_eq!(passives.value(), Some(0.0));
    assert_interval(passives.interval(0.95).unwrap(), 0.0, 0.0, 0.0);
    assert_eq!(Nps::default().value(), None);
    assert_eq!(Nps::default().interval(0.95), None);
    // Nine promoters and one detractor: 80 ± 1.96 · 100 · sqrt((1 - 0.64)/10) = 80 ± 37.2,
    // clamped at 100.
    let clamped = Nps::new(9, 0, 1).interval(0.95).unwrap();
    assert_eq!(clamped.upper, 100.0);
    assert_close(
        clamped.lower,
        80.0 - 1.959964 * 100.0 * 0.036_f64.sqrt(),
        1e-4,
    );
}

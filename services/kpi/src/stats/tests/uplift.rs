//! Uplift estimators against hand-computed references (Newcombe's own example, a Welch test
//! worked by hand, the NPS delta method) and their edge cases.

use super::estimators::assert_close;
use crate::stats::{
    METHOD_NEWCOMBE, METHOD_NPS_DELTA, METHOD_WELCH_T, Mean, Nps, Proportion, mean_uplift,
    nps_uplift, proportion_uplift,
};

#[test]
fn proportion_uplift_reproduces_newcombes_example() {
    // Newcombe (1998), example (a): 56/70 vs 48/80, difference 0.2, 95 % CI 0.0524 to 0.3339.
    let uplift =
        proportion_uplift(&Proportion::new(56, 70), &Proportion::new(48, 80), 0.95).unwrap();
    assert_eq!(uplift.method, METHOD_NEWCOMBE);
    assert_close(uplift.absolute, 0.2, 1e-12);
    let interval = uplift.absolute_interval.unwrap();
    assert_close(interval.lower, 0.0524, 5e-5);
    assert_close(interval.upper, 0.3339, 5e-5);
    // Pooled z = 0.2 / sqrt(P(1-P)(1/70 + 1/80)), P = 104/150: z = 2.6502, p = 0.008045.
    assert_close(uplift.p_value.unwrap(), 0.008_045, 1e-6);
    // Relative 0.8/0.6 - 1 with the log-ratio interval exp(ln(4/3) ± 1.96 · 0.109109) - 1.
    assert_close(uplift.relative, 1.0 / 3.0, 1e-12);
    let relative = uplift.relative_interval.unwrap();
    assert_close(relative.lower, 0.076_626, 1e-5);
    assert_close(relative.upper, 0.651_249, 1e-5);
}

#[test]
fn proportion_uplift_edge_cases() {
    let empty = Proportion::default();
    let some = Proportion::new(3, 10);
    assert!(proportion_uplift(&empty, &some, 0.95).is_none());
    assert!(proportion_uplift(&some, &empty, 0.95).is_none());
    assert!(proportion_uplift(&some, &some, 1.0).is_none());
    // No conversions anywhere: the Newcombe interval still exists, no test, no relative.
    let zero = Proportion::new(0, 100);
    let uplift = proportion_uplift(&zero, &zero, 0.95).unwrap();
    assert_eq!(uplift.absolute, 0.0);
    let interval = uplift.absolute_interval.unwrap();
    assert!(interval.lower < 0.0 && interval.upper > 0.0, "{interval:?}");
    assert_eq!(uplift.p_value, None);
    assert_eq!(uplift.relative, 0.0);
    assert_eq!(uplift.relative_interval, None);
    // Treatment without conversions: relative -1, its linear interval collapses, so none.
    let uplift = proportion_uplift(&zero, &some, 0.95).unwrap();
    assert_eq!(uplift.relative, -1.0);
    assert_eq!(uplift.relative_interval, None);
}

#[test]
fn welch_uplift_matches_the_hand_computation() {
    // Treatment 1..=5: mean 3, s² 2.5; control 2, 4, …, 12: mean 7, s² 14.
    // se² = 2.5/5 + 14/6 = 2.8333, df = se⁴ / (0.5²/4 + 2.3333²/5) = 6.97226,
    // t(0.975, 6.97226) = 2.366533, t = -4 / 1.683251 = -2.37635, p = 0.049284.
    let treatment = Mean::from_values(&[1.0, 2.0, 3.0, 4.0, 5.0]);
    let control = Mean::from_values(&[2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
    let uplift = mean_uplift(&treatment, &control, 0.95).unwrap();
    assert_eq!(uplift.method, METHOD_WELCH_T);
    assert_close(uplift.absolute, -4.0, 1e-12);
    let interval = uplift.absolute_interval.unwrap();
    assert_close(interval.lower, -7.983_469, 1e-5);
    assert_close(interval.upper, -0.016_531, 1e-5);
    assert_close(uplift.p_value.unwrap(), 0.049_284, 1e-5);
    assert_close(uplift.relative, -4.0 / 7.0, 1e-12);
    let relative = uplift.relative_interval.unwrap();
    assert_close(relative.lower, -0.799_601, 1e-5);
    assert_close(relative.upper, -0.083_459, 1e-5);
}

#[test]
fn welch_uplift_edge_cases() {
    let one = Mean::from_values(&[5.0]);
    let some = Mean::from_values(&[1.0, 2.0, 3.0]);
    assert!(mean_uplift(&Mean::default(), &some, 0.95).is_none());
    assert!(mean_uplift(&some, &some, 0.0).is_none());
    // A single observation: point estimates only.
    let uplift = mean_uplift(&one, &some, 0.95).unwrap();
    assert_eq!(uplift.absolute, 3.0);
    assert_eq!(uplift.relative, 1.5);
    assert_eq!(uplift.absolute_interval, None);
    assert_eq!(uplift.relative_interval, None);
    assert_eq!(uplift.p_value, None);
    // Both arms constant: a point interval and no test.
    let fours = Mean::from_values(&[4.0, 4.0]);
    let twos = Mean::from_values(&[2.0, 2.0, 2.0]);
    let uplift = mean_uplift(&fours, &twos, 0.95).unwrap();
    let interval = uplift.absolute_interval.unwrap();
    assert_eq!((interval.lower, interval.upper), (2.0, 2.0));
    assert_eq!(uplift.p_value, None);
    // Control mean 0: relative 0 and no relative interval.
    let centred = Mean::from_values(&[-1.0, 1.0]);
    let uplift = mean_uplift(&some, &centred, 0.95).unwrap();
    assert_eq!(uplift.relative, 0.0);
    assert_eq!(uplift.relative_interval, None);
    assert!(uplift.p_value.is_some());
}

#[test]
fn nps_uplift_matches_the_delta_method() {
    // Treatment 50/30/20 → 30, Var 61; control 40/30/30 → 10, Var 69 (±100 scale, n = 100).
    // Difference 20 ± 1.96 · sqrt(130), p = erfc(20 / sqrt(130) / √2).
    let uplift = nps_uplift(&Nps::new(50, 30, 20), &Nps::new(40, 30, 30), 0.95).unwrap();
    assert_eq!(uplift.method, METHOD_NPS_DELTA);
    assert_close(uplift.absolute, 20.0, 1e-9);
    let interval = uplift.absolute_interval.unwrap();
    assert_close(interval.lower, -2.347_028, 1e-5);
    assert_close(interval.upper, 42.347_028, 1e-5);
    assert_close(uplift.p_value.unwrap(), 0.079_411, 1e-5);
    assert_close(uplift.relative, 2.0, 1e-9);
    let relative = uplift.relative_interval.unwrap();
    assert_close(relative.lower, -0.455_313, 1e-5);
    assert_close(relative.upper, 15.523_265, 1e-4);
}

#[test]
fn nps_uplift_over_a_negative_control_is_positive_when_better() {
    // Treatment 10 against control -10: 20 points better, relative +2 (not t/c - 1 = -2), with
    // the linear delta interval 2 ± 1.96 · sqrt(69 + 69) / 10.
    let uplift = nps_uplift(&Nps::new(40, 30, 30), &Nps::new(30, 30, 40), 0.95).unwrap();
    assert_close(uplift.relative, 2.0, 1e-9);
    let relative = uplift.relative_interval.unwrap();
    assert_close(relative.lower, -0.302_436, 1e-5);
    assert_close(relative.upper, 4.302_436, 1e-5);
}

#[test]
fn nps_uplift_edge_cases() {
    let promoters = Nps::new(10, 0, 0);
    let detractors = Nps::new(0, 0, 10);
    assert!(nps_uplift(&Nps::default(), &promoters, 0.95).is_none());
    // All promoters against all detractors: no variance, a point interval, no test.
    let uplift = nps_uplift(&promoters, &detractors, 0.95).unwrap();
    assert_eq!(uplift.absolute, 200.0);
    let interval = uplift.absolute_interval.unwrap();
    assert_eq!((interval.lower, interval.upper), (200.0, 200.0));
    assert_eq!(uplift.p_value, None);
    // Control NPS 0: relative 0 and no relative interval.
    let uplift = nps_uplift(&promoters, &Nps::new(3, 4, 3), 0.95).unwrap();
    assert_eq!(uplift.relative, 0.0);
    assert_eq!(uplift.relative_interval, None);
}

//! Sample ratio mismatch checks against hand-computed chi-square values.

use super::estimators::assert_close;
use crate::stats::{SRM_ALPHA, sample_ratio_mismatch};

#[test]
fn even_split_on_a_50_50_plan_is_no_mismatch() {
    let srm = sample_ratio_mismatch(&[5000, 5000], &[0.5, 0.5]).unwrap();
    assert_eq!(srm.statistic, 0.0);
    assert_eq!(srm.df, 1);
    assert_close(srm.p_value, 1.0, 1e-12);
    assert!(!srm.mismatch);
}

#[test]
fn a_5200_4800_split_on_a_50_50_plan_is_a_mismatch() {
    // χ² = 2 · 200² / 5000 = 16 on 1 df: p = erfc(4 / √2) ≈ 6.334e-5.
    let srm = sample_ratio_mismatch(&[5200, 4800], &[1.0, 1.0]).unwrap();
    assert_close(srm.statistic, 16.0, 1e-9);
    assert_close(srm.p_value, 6.334_248e-5, 1e-10);
    assert!(srm.p_value < SRM_ALPHA);
    assert!(srm.mismatch);
}

#[test]
fn three_arms_are_tested_on_two_degrees_of_freedom() {
    // Expected 1033.3 each: χ² = 6.4516, and on 2 df p = exp(-χ²/2) = 0.039724.
    let srm = sample_ratio_mismatch(&[1000, 1000, 1100], &[1.0, 1.0, 1.0]).unwrap();
    assert_eq!(srm.df, 2);
    assert_close(srm.statistic, 6.451_613, 1e-6);
    assert_close(srm.p_value, 0.039_724, 1e-6);
    assert!(!srm.mismatch);
    // Uneven plans are normalised: 2000/1000/1000 is exactly 50/25/25.
    let srm = sample_ratio_mismatch(&[2000, 1000, 1000], &[50.0, 25.0, 25.0]).unwrap();
    assert_close(srm.statistic, 0.0, 1e-12);
    let srm = sample_ratio_mismatch(&[2000, 1500, 500], &[0.5, 0.25, 0.25]).unwrap();
    assert!(srm.mismatch);
}

#[test]
fn srm_refuses_what_it_cannot_test() {
    assert!(sample_ratio_mismatch(&[10], &[1.0]).is_none());
    assert!(sample_ratio_mismatch(&[0, 0], &[0.5, 0.5]).is_none());
    assert!(sample_ratio_mismatch(&[10, 10], &[0.5]).is_none());
    assert!(sample_ratio_mismatch(&[10, 10], &[0.5, 0.0]).is_none());
    assert!(sample_ratio_mismatch(&[10, 10], &[0.5, f64::NAN]).is_none());
}

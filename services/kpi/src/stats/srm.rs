//! Sample ratio mismatch: a chi-square goodness-of-fit test of the observed arm sizes against
//! the planned allocation, the first check before trusting an experiment's uplift.

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// The p-value below which arm sizes are flagged as a mismatch. Deliberately strict: the check
/// runs on every experiment, often repeatedly, and a flag means "do not trust the results".
pub const SRM_ALPHA: f64 = 0.001;

/// The outcome of a sample ratio mismatch check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Srm {
    /// Pearson's chi-square statistic `Σ (observed - expected)² / expected`.
    pub statistic: f64,
    /// Degrees of freedom: arms - 1.
    pub df: u64,
    /// `P(χ²(df) ≥ statistic)`.
    pub p_value: f64,
    /// `p_value < SRM_ALPHA`.
    pub mismatch: bool,
}

/// Tests the observed customers per arm against the planned allocation (weights in any unit,
/// normalised here: `expected_i = N · w_i / Σw`).
///
/// `None` when there are fewer than two arms, no customers, the two slices differ in length, or
/// a planned weight is not a positive finite number.
pub fn sample_ratio_mismatch(observed: &[u64], planned: &[f64]) -> Option<Srm> {
    if observed.len() < 2 || observed.len() != planned.len() {
        return None;
    }
    if planned.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
        return None;
    }
    let total: u64 = observed.iter().sum();
    if total == 0 {
        return None;
    }
    let weight: f64 = planned.iter().sum();
    let statistic = observed
        .iter()
        .zip(planned)
        .map(|(&o, &w)| {
            let expected = total as f64 * w / weight;
            (o as f64 - expected).powi(2) / expected
        })
        .sum::<f64>();
    let df = observed.len() as u64 - 1;
    let p_value = ChiSquared::new(df as f64).ok()?.sf(statistic);
    Some(Srm {
        statistic,
        df,
        p_value,
        mismatch: p_value < SRM_ALPHA,
    })
}

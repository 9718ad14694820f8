//! The mean of a numeric KPI (order value, handling time, …) as count, mean and sum of squared
//! deviations, merged with Chan's parallel formula, and its Student t interval.

use super::Interval;
use super::distribution::t_critical;

/// Count, running mean and `m2` (the sum of squared deviations from the mean): the mergeable
/// sufficient statistic of a mean and its variance.
///
/// This form is used instead of `(n, Σx, Σx²)` because `Σx² - (Σx)²/n` cancels catastrophically
/// when the mean is large against the spread; Welford's update and Chan's merge keep full
/// precision. Invariant: `m2 ≥ 0`, and `mean = m2 = 0` when `n = 0`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Mean {
    /// Number of observations.
    pub n: u64,
    /// Their mean (0 when `n = 0`).
    pub mean: f64,
    /// Sum of squared deviations from `mean`.
    pub m2: f64,
}

impl Mean {
    /// The statistic of the given observations.
    pub fn from_values(values: &[f64]) -> Self {
        let mut mean = Self::default();
        for &value in values {
            mean.add(value);
        }
        mean
    }

    /// The statistic of `n` observations with sum `sum` and sum of squares `sumsq`, as the
    /// stored aggregates keep them (see [`crate::fields::stat`]).
    ///
    /// `m2 = sumsq - sum² / n` loses precision when the mean is large against the spread (see the
    /// type's documentation), and rounding can then make it slightly negative: it is clamped at
    /// 0, so the statistic keeps its invariant. `n = 0` gives the empty statistic.
    pub fn from_sums(n: u64, sum: f64, sumsq: f64) -> Self {
        if n == 0 {
            return Self::default();
        }
        let count = n as f64;
        Self {
            n,
            mean: sum / count,
            m2: (sumsq - sum * sum / count).max(0.0),
        }
    }

    /// Records one observation (Welford's update).
    pub fn add(&mut self, value: f64) {
        self.n += 1;
        let delta = value - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (value - self.mean);
    }

    /// Combines `other` (another bucket or replica) into this one with Chan et al.'s parallel
    /// formula:
    ///
    /// ```text
    /// n    = nA + nB
    /// δ    = meanB - meanA
    /// mean = meanA + δ · nB / n
    /// m2   = m2A + m2B + δ² · nA · nB / n
    /// ```
    pub fn merge(&mut self, other: &Self) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *other;
            return;
        }
        let (na, nb) = (self.n as f64, other.n as f64);
        let n = na + nb;
        let delta = other.mean - self.mean;
        self.mean += delta * nb / n;
        self.m2 += other.m2 + delta * delta * na * nb / n;
        self.n += other.n;
    }

    /// The sample mean; `None` without observations.
    pub fn value(&self) -> Option<f64> {
        (self.n > 0).then_some(self.mean)
    }

    /// The sample variance `m2 / (n - 1)`; `None` for fewer than two observations.
    pub fn variance(&self) -> Option<f64> {
        (self.n >= 2).then(|| self.m2.max(0.0) / (self.n - 1) as f64)
    }

    /// The sample standard deviation; `None` for fewer than two observations.
    pub fn std_dev(&self) -> Option<f64> {
        self.variance().map(f64::sqrt)
    }

    /// The standard error of the mean `s / sqrt(n)`; `None` for fewer than two observations.
    pub fn standard_error(&self) -> Option<f64> {
        Some((self.variance()? / self.n as f64).sqrt())
    }

    /// The Student t interval `mean ± t(level, n - 1) · s / sqrt(n)`; `None` for fewer than two
    /// observations or a level outside (0, 1). Constant data give a zero-width interval.
    pub fn t_interval(&self, level: f64) -> Option<Interval> {
        let se = self.standard_error()?;
        let t = t_critical(level, (self.n - 1) as f64)?;
        Some(Interval::around(self.mean, t * se, level))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_sums_matches_the_observations_and_clamps_m2() {
        let values = [2.0, 4.0, 4.0, 5.0, 7.0];
        let sum: f64 = values.iter().sum();
        let sumsq: f64 = values.iter().map(|v| v * v).sum();
        let from_sums = Mean::from_sums(5, sum, sumsq);
        let direct = Mean::from_values(&values);
        assert_eq!(from_sums.n, 5);
        assert!((from_sums.mean - direct.mean).abs() < 1e-12);
        assert!((from_sums.m2 - direct.m2).abs() < 1e-9);
        // Constant values whose sums cancel to a hair below zero.
        let x = 0.1_f64 + 0.2;
        let clamped = Mean::from_sums(3, 3.0 * x, 3.0 * x * x - 1e-12);
        assert_eq!(clamped.m2, 0.0);
        assert_eq!(clamped.variance(), Some(0.0));
        assert_eq!(Mean::from_sums(0, 5.0, 25.0), Mean::default());
    }
}

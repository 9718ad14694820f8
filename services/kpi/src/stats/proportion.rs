//! A proportion (conversion rate, contact rate, …) as success and trial counts, with the Wilson
//! score interval.

use super::Interval;
use super::distribution::z_critical;

/// Successes out of trials: the sufficient statistic of a rate. Counts add, so aggregates of
/// time buckets or replicas merge exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Proportion {
    /// Trials that succeeded (at most `trials`).
    pub successes: u64,
    /// All trials.
    pub trials: u64,
}

impl Proportion {
    /// A proportion of `successes` out of `trials`.
    pub fn new(successes: u64, trials: u64) -> Self {
        Self { successes, trials }
    }

    /// Records one trial.
    pub fn add(&mut self, success: bool) {
        self.trials += 1;
        self.successes += u64::from(success);
    }

    /// Adds the counts of `other` (another bucket or replica) to this one.
    pub fn merge(&mut self, other: &Self) {
        self.successes += other.successes;
        self.trials += other.trials;
    }

    /// The observed rate `successes / trials`; `None` without trials or with inconsistent counts
    /// (more successes than trials), which every estimator then also refuses.
    pub fn value(&self) -> Option<f64> {
        (self.trials > 0 && self.successes <= self.trials)
            .then(|| self.successes as f64 / self.trials as f64)
    }

    /// The unpooled standard error `sqrt(p (1 - p) / n)`; `None` without trials.
    pub fn standard_error(&self) -> Option<f64> {
        let p = self.value()?;
        Some((p * (1.0 - p) / self.trials as f64).sqrt())
    }

    /// The Wilson score interval at `level`; `None` without trials or for a level outside (0, 1).
    ///
    /// ```text
    /// center = (p + z²/2n) / (1 + z²/n)
    /// half   = z / (1 + z²/n) · sqrt(p (1 - p) / n + z²/4n²)
    /// ```
    ///
    /// Unlike the Wald interval it stays inside [0, 1] and does not collapse at 0 or n successes.
    pub fn wilson(&self, level: f64) -> Option<Interval> {
        let p = self.value()?;
        let z = z_critical(level)?;
        let n = self.trials as f64;
        let z2 = z * z;
        let denominator = 1.0 + z2 / n;
        let center = (p + z2 / (2.0 * n)) / denominator;
        let half = z / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
        let mut interval = Interval::around(center, half, level).clamped(0.0, 1.0);
        // The bounds are exactly 0 and 1 at the extremes; rounding would leave them a hair off.
        if self.successes == 0 {
            interval.lower = 0.0;
        }
        if self.successes == self.trials {
            interval.upper = 1.0;
        }
        Some(interval)
    }
}

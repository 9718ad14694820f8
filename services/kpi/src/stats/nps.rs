//! Net Promoter Score as counts of promoters (9–10), passives (7–8) and detractors (0–6), with
//! the normal-approximation interval from the trinomial variance.

use super::distribution::z_critical;
use super::{Interval, StatsError};

/// Counts of the three NPS answer groups: the mergeable sufficient statistic of an NPS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Nps {
    /// Answers of 9 or 10.
    pub promoters: u64,
    /// Answers of 7 or 8.
    pub passives: u64,
    /// Answers of 0 to 6.
    pub detractors: u64,
}

impl Nps {
    /// An NPS aggregate from its three counts.
    pub fn new(promoters: u64, passives: u64, detractors: u64) -> Self {
        Self {
            promoters,
            passives,
            detractors,
        }
    }

    /// Records one answer on the 0..=10 scale; [`StatsError::InvalidScore`] above 10.
    pub fn add_score(&mut self, score: u32) -> Result<(), StatsError> {
        match score {
            9..=10 => self.promoters += 1,
            7..=8 => self.passives += 1,
            0..=6 => self.detractors += 1,
            _ => return Err(StatsError::InvalidScore { score }),
        }
        Ok(())
    }

    /// Adds the counts of `other` (another bucket or replica) to this one.
    pub fn merge(&mut self, other: &Self) {
        self.promoters += other.promoters;
        self.passives += other.passives;
        self.detractors += other.detractors;
    }

    /// All answers.
    pub fn n(&self) -> u64 {
        self.promoters + self.passives + self.detractors
    }

    /// The shares of promoters and detractors; `None` without answers.
    fn shares(&self) -> Option<(f64, f64)> {
        let n = self.n();
        (n > 0).then(|| {
            let n = n as f64;
            (self.promoters as f64 / n, self.detractors as f64 / n)
        })
    }

    /// The score `100 · (p - d)` on -100..=100, `p` and `d` the shares of promoters and
    /// detractors; `None` without answers.
    pub fn value(&self) -> Option<f64> {
        let (p, d) = self.shares()?;
        Some(100.0 * (p - d))
    }

    /// The variance of [`Nps::value`] (on the ±100 scale) from the trinomial model:
    /// `100² · (p + d - (p - d)²) / n`; `None` without answers.
    pub fn variance(&self) -> Option<f64> {
        let (p, d) = self.shares()?;
        let per_answer = (p + d - (p - d) * (p - d)).max(0.0);
        Some(1e4 * per_answer / self.n() as f64)
    }

    /// The standard error of [`Nps::value`]; `None` without answers.
    pub fn standard_error(&self) -> Option<f64> {
        self.variance().map(f64::sqrt)
    }

    /// The normal-approximation interval `value ± z · se`, clamped to [-100, 100]; `None` without
    /// answers or for a level outside (0, 1).
    ///
    /// When every answer falls in one group (all promoters, all passives or all detractors) the
    /// estimated variance is 0 and the interval collapses to the point: the approximation has
    /// nothing to go on, which callers should read together with `n`.
    pub fn interval(&self, level: f64) -> Option<Interval> {
        let value = self.value()?;
        let se = self.standard_error()?;
        let z = z_critical(level)?;
        Some(Interval::around(value, z * se, level).clamped(-100.0, 100.0))
    }
}

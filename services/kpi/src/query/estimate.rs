//! A metric's value, count and interval from the summed statistics of a group, by the metric's
//! formula, the uplift of one arm over another, and their API forms.

use iee_api::kpi::{ConfidenceInterval, Uplift};

use super::reader::Sums;
use crate::catalogue::Formula;
use crate::fields::stat;
use crate::stats::{self, Interval, Mean, Nps, Proportion};

/// A metric's value over some rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Estimate {
    /// The value, in the metric's unit (NPS on -100..100).
    pub value: f64,
    /// The observations behind it: trials, observations, answers, the count itself, or the
    /// denominator of a ratio.
    pub count: u64,
    /// Its confidence interval, when the formula has one and the data allow it.
    pub interval: Option<Interval>,
}

/// The statistics a formula reads.
pub(super) fn stats_of(formula: &Formula) -> Vec<&str> {
    match formula {
        Formula::Proportion { successes, trials } => vec![successes, trials],
        Formula::Mean { n, sum, sumsq } => vec![n, sum, sumsq],
        Formula::Nps => vec![
            stat::NPS_PROMOTERS,
            stat::NPS_PASSIVES,
            stat::NPS_DETRACTORS,
        ],
        Formula::Count(count) => vec![count],
        Formula::Ratio {
            numerator,
            denominator,
        } => vec![numerator, denominator],
    }
}

/// The metric's value over `sums`; `None` without observations (no trials, observations or
/// answers, a zero count or a zero denominator).
pub(super) fn estimate(formula: &Formula, sums: &Sums, level: f64) -> Option<Estimate> {
    match formula {
        Formula::Proportion { successes, trials } => {
            let p = Proportion::new(count(sums, successes), count(sums, trials));
            Some(Estimate {
                value: p.value()?,
                count: p.trials,
                interval: p.wilson(level),
            })
        }
        Formula::Mean { n, sum, sumsq } => {
            let mean = mean(sums, n, sum, sumsq);
            Some(Estimate {
                value: mean.value()?,
                count: mean.n,
                interval: mean.t_interval(level),
            })
        }
        Formula::Nps => {
            let nps = nps(sums);
            Some(Estimate {
                value: nps.value()?,
                count: nps.n(),
                interval: nps.interval(level),
            })
        }
        Formula::Count(name) => {
            let value = total(sums, name);
            (value != 0.0).then(|| Estimate {
                value,
                count: count(sums, name),
                interval: None,
            })
        }
        Formula::Ratio {
            numerator,
            denominator,
        } => {
            let below = total(sums, denominator);
            (below != 0.0).then(|| Estimate {
                value: total(sums, numerator) / below,
                count: count(sums, denominator),
                interval: None,
            })
        }
    }
}

/// The uplift of `treatment` over `control`; `None` for counts and ratios (no sampling model)
/// and when an arm has no observations.
pub(super) fn uplift(
    formula: &Formula,
    treatment: &Sums,
    control: &Sums,
    level: f64,
) -> Option<stats::Uplift> {
    match formula {
        Formula::Proportion { successes, trials } => {
            let arm = |sums| Proportion::new(count(sums, successes), count(sums, trials));
            stats::proportion_uplift(&arm(treatment), &arm(control), level)
        }
        Formula::Mean { n, sum, sumsq } => stats::mean_uplift(
            &mean(treatment, n, sum, sumsq),
            &mean(control, n, sum, sumsq),
            level,
        ),
        Formula::Nps => stats::nps_uplift(&nps(treatment), &nps(control), level),
        Formula::Count(_) | Formula::Ratio { .. } => None,
    }
}

/// An interval in its API form.
pub(super) fn interval_pb(interval: Interval) -> ConfidenceInterval {
    ConfidenceInterval {
        lower: interval.lower,
        upper: interval.upper,
        level: interval.level,
    }
}

/// An uplift in its API form; a p-value that cannot be computed (no variation, or too few
/// observations) is reported as 1: no evidence of a difference.
pub(super) fn uplift_pb(uplift: stats::Uplift) -> Uplift {
    Uplift {
        absolute: uplift.absolute,
        absolute_interval: uplift.absolute_interval.map(interval_pb),
        relative: uplift.relative,
        relative_interval: uplift.relative_interval.map(interval_pb),
        p_value: uplift.p_value.unwrap_or(1.0),
        method: uplift.method.to_owned(),
    }
}

/// The sum of statistic `name`, 0 when absent.
pub(super) fn total(sums: &Sums, name: &str) -> f64 {
    sums.get(name).copied().unwrap_or(0.0)
}

/// The sum of statistic `name` as a count: rounded (the sums of floats may be a hair off) and
/// at least 0.
pub(super) fn count(sums: &Sums, name: &str) -> u64 {
    let value = total(sums, name).round();
    if value.is_finite() && value > 0.0 {
        value as u64
    } else {
        0
    }
}

/// The mean statistic from its three sums.
fn mean(sums: &Sums, n: &str, sum: &str, sumsq: &str) -> Mean {
    Mean::from_sums(count(sums, n), total(sums, sum), total(sums, sumsq))
}

/// The NPS statistic from its three counts.
fn nps(sums: &Sums) -> Nps {
    Nps::new(
        count(sums, stat::NPS_PROMOTERS),
        count(sums, stat::NPS_PASSIVES),
        count(sums, stat::NPS_DETRACTORS),
    )
}

//! Uplift of a treatment arm over a control arm: the absolute difference with its interval and
//! p-value, and the relative difference with a delta-method interval, for each KPI kind.

use super::distribution::{normal_p_value, t_critical, t_p_value, z_critical};
use super::level::is_valid;
use super::{Interval, Mean, Nps, Proportion};

/// [`Uplift::method`] of [`proportion_uplift`]: Newcombe's hybrid score interval for the
/// difference (the p-value comes from the pooled two-proportion z test).
pub const METHOD_NEWCOMBE: &str = "newcombe";
/// [`Uplift::method`] of [`mean_uplift`]: Welch's unequal-variance t test and interval.
pub const METHOD_WELCH_T: &str = "welch_t";
/// [`Uplift::method`] of [`nps_uplift`]: delta-method normal interval and z test on the
/// difference of two scores.
pub const METHOD_NPS_DELTA: &str = "nps_delta";

/// How much the treatment arm's KPI exceeds the control arm's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Uplift {
    /// `treatment - control`, in the KPI's unit (rate, mean, NPS points).
    pub absolute: f64,
    /// The interval of `absolute`; `None` when an arm has too little data to estimate its
    /// variance (a mean with fewer than two observations).
    pub absolute_interval: Option<Interval>,
    /// `(treatment - control) / |control|`, which is `treatment / control - 1` for a positive
    /// control and keeps "better is positive" for a negative one (NPS); 0 when control is 0.
    pub relative: f64,
    /// The delta-method interval of `relative`; `None` when control is 0 or its standard error
    /// is zero or cannot be estimated.
    pub relative_interval: Option<Interval>,
    /// The two-sided p-value of "no difference"; `None` when the standard error of the
    /// difference is zero or cannot be estimated (no variation in either arm).
    pub p_value: Option<f64>,
    /// The method label: [`METHOD_NEWCOMBE`], [`METHOD_WELCH_T`] or [`METHOD_NPS_DELTA`].
    pub method: &'static str,
}

/// Uplift of one rate over another; `None` when an arm has no trials or for a level outside
/// (0, 1).
///
/// - absolute: `pT - pC` with Newcombe's hybrid score interval (method 10 of his 1998 paper),
///   built from the two Wilson intervals `[lT, uT]` and `[lC, uC]`:
///   `[d - sqrt((pT - lT)² + (uC - pC)²), d + sqrt((uT - pT)² + (pC - lC)²)]`;
/// - p-value: pooled two-proportion z test, `z = d / sqrt(P (1 - P) (1/nT + 1/nC))` with `P`
///   the pooled rate;
/// - relative: delta method on the log ratio (see [`Uplift::relative`]), linear when the
///   treatment rate is 0.
pub fn proportion_uplift(
    treatment: &Proportion,
    control: &Proportion,
    level: f64,
) -> Option<Uplift> {
    let z = z_critical(level)?;
    let (pt, pc) = (treatment.value()?, control.value()?);
    let (wt, wc) = (treatment.wilson(level)?, control.wilson(level)?);
    let absolute = pt - pc;
    let absolute_interval = Interval {
        lower: absolute - ((pt - wt.lower).powi(2) + (wc.upper - pc).powi(2)).sqrt(),
        upper: absolute + ((wt.upper - pt).powi(2) + (pc - wc.lower).powi(2)).sqrt(),
        level,
    };
    let (nt, nc) = (treatment.trials as f64, control.trials as f64);
    let pooled = (treatment.successes + control.successes) as f64 / (nt + nc);
    let pooled_se = (pooled * (1.0 - pooled) * (1.0 / nt + 1.0 / nc)).sqrt();
    let p_value = (pooled_se > 0.0).then(|| normal_p_value(absolute / pooled_se));
    let variance = |p: f64, n: f64| p * (1.0 - p) / n;
    let (relative, relative_interval) =
        relative_uplift(pt, variance(pt, nt), pc, variance(pc, nc), z, level);
    Some(Uplift {
        absolute,
        absolute_interval: Some(absolute_interval),
        relative,
        relative_interval,
        p_value,
        method: METHOD_NEWCOMBE,
    })
}

/// Uplift of one mean over another by Welch's t; `None` when an arm has no observations or for
/// a level outside (0, 1). With fewer than two observations in an arm only the point estimates
/// are given.
///
/// - absolute: `mT - mC ± t(level, df) · se`, `se² = vT + vC`, `v = s² / n`, and the
///   Welch–Satterthwaite `df = (vT + vC)² / (vT² / (nT - 1) + vC² / (nC - 1))`;
/// - p-value: two-sided t test of `(mT - mC) / se` on `df`;
/// - relative: delta method (see [`Uplift::relative`]) with the same critical value, on the
///   log ratio when both means are positive and linear otherwise.
///
/// When both arms are constant the interval is the point and there is no p-value.
pub fn mean_uplift(treatment: &Mean, control: &Mean, level: f64) -> Option<Uplift> {
    if !is_valid(level) {
        return None;
    }
    let (mt, mc) = (treatment.value()?, control.value()?);
    let absolute = mt - mc;
    let squared_se = |mean: &Mean| Some(mean.variance()? / mean.n as f64);
    let (vt, vc) = (squared_se(treatment), squared_se(control));
    let mut uplift = Uplift {
        absolute,
        absolute_interval: None,
        relative: relative_value(mt, mc),
        relative_interval: None,
        p_value: None,
        method: METHOD_WELCH_T,
    };
    let (Some(vt), Some(vc)) = (vt, vc) else {
        return Some(uplift);
    };
    let se = (vt + vc).sqrt();
    if se == 0.0 {
        uplift.absolute_interval = Some(Interval::around(absolute, 0.0, level));
        return Some(uplift);
    }
    let df = welch_df(vt, treatment.n, vc, control.n);
    let Some(critical) = t_critical(level, df) else {
        return Some(uplift);
    };
    uplift.absolute_interval = Some(Interval::around(absolute, critical * se, level));
    uplift.p_value = t_p_value(absolute / se, df);
    uplift.relative_interval = relative_uplift(mt, vt, mc, vc, critical, level).1;
    Some(uplift)
}

/// The Welch–Satterthwaite degrees of freedom of `vt + vc`, `v = s² / n` (each `n ≥ 2`).
fn welch_df(vt: f64, nt: u64, vc: f64, nc: u64) -> f64 {
    let denominator = vt * vt / (nt - 1) as f64 + vc * vc / (nc - 1) as f64;
    (vt + vc).powi(2) / denominator
}

/// Uplift of one NPS over another by the delta method; `None` when an arm has no answers or for
/// a level outside (0, 1).
///
/// - absolute: `nT - nC ± z · sqrt(VarT + VarC)` on the ±100 scale, each variance the
///   trinomial one of [`Nps::variance`], clamped to [-200, 200];
/// - p-value: two-sided z test of `(nT - nC) / se`;
/// - relative: delta method (see [`Uplift::relative`]), on the log ratio when both scores are
///   positive and linear otherwise, since a negative score has no logarithm.
pub fn nps_uplift(treatment: &Nps, control: &Nps, level: f64) -> Option<Uplift> {
    let z = z_critical(level)?;
    let (st, sc) = (treatment.value()?, control.value()?);
    let (vt, vc) = (treatment.variance()?, control.variance()?);
    let absolute = st - sc;
    let se = (vt + vc).sqrt();
    let absolute_interval = Interval::around(absolute, z * se, level).clamped(-200.0, 200.0);
    let p_value = (se > 0.0).then(|| normal_p_value(absolute / se));
    let (relative, relative_interval) = relative_uplift(st, vt, sc, vc, z, level);
    Some(Uplift {
        absolute,
        absolute_interval: Some(absolute_interval),
        relative,
        relative_interval,
        p_value,
        method: METHOD_NPS_DELTA,
    })
}

/// `(t - c) / |c|`, 0 when `c` is 0.
fn relative_value(t: f64, c: f64) -> f64 {
    if c == 0.0 { 0.0 } else { (t - c) / c.abs() }
}

/// The relative uplift and its delta-method interval from the two estimates `t`, `c` and their
/// squared standard errors `vt`, `vc`, with `critical` the two-sided critical value.
///
/// When both estimates are positive the interval is built on the log ratio and mapped back,
/// `exp(ln(t/c) ± critical · sqrt(vt/t² + vc/c²)) - 1`, which respects the lower bound -1 and the
/// skew of a ratio. Otherwise (a zero or negative estimate) it is linear:
/// `(t - c)/|c| ± critical · sqrt(vt + (t/c)² vc) / |c|`.
fn relative_uplift(
    t: f64,
    vt: f64,
    c: f64,
    vc: f64,
    critical: f64,
    level: f64,
) -> (f64, Option<Interval>) {
    let relative = relative_value(t, c);
    if c == 0.0 {
        return (relative, None);
    }
    let usable = |se: f64| se.is_finite() && se > 0.0;
    let interval = if t > 0.0 && c > 0.0 {
        let se = (vt / (t * t) + vc / (c * c)).sqrt();
        let log_ratio = (t / c).ln();
        usable(se).then(|| Interval {
            lower: (log_ratio - critical * se).exp() - 1.0,
            upper: (log_ratio + critical * se).exp() - 1.0,
            level,
        })
    } else {
        let ratio = t / c;
        let se = (vt + ratio * ratio * vc).sqrt() / c.abs();
        usable(se).then(|| Interval::around(relative, critical * se, level))
    };
    (relative, interval)
}

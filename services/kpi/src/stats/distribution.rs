//! Critical values and two-sided p-values of the standard normal and Student t distributions,
//! shared by every interval and test.

use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

use super::level::is_valid;

/// Beyond this many degrees of freedom the t distribution is the normal one to double precision,
/// and statrs' t quantile (which has no infinite-df case) is not needed.
const NORMAL_DF: f64 = 1e12;

/// The two-sided standard normal critical value `z` with `P(|Z| ≤ z) = level`; `None` for an
/// invalid level.
pub(crate) fn z_critical(level: f64) -> Option<f64> {
    if !is_valid(level) {
        return None;
    }
    Some(Normal::standard().inverse_cdf(0.5 + level / 2.0))
}

/// The two-sided Student t critical value with `df` degrees of freedom; `None` for an invalid
/// level or `df` that is not positive.
pub(crate) fn t_critical(level: f64, df: f64) -> Option<f64> {
    if !is_valid(level) || df.is_nan() || df <= 0.0 {
        return None;
    }
    if df > NORMAL_DF {
        return z_critical(level);
    }
    let t = StudentsT::new(0.0, 1.0, df).ok()?;
    Some(t.inverse_cdf(0.5 + level / 2.0))
}

/// The two-sided p-value `P(|Z| ≥ |z|)` of a standard normal statistic.
pub(crate) fn normal_p_value(z: f64) -> f64 {
    (2.0 * Normal::standard().sf(z.abs())).min(1.0)
}

/// The two-sided p-value `P(|T| ≥ |t|)` of a Student t statistic with `df` degrees of freedom;
/// `None` when `df` is not positive.
pub(crate) fn t_p_value(t: f64, df: f64) -> Option<f64> {
    if df.is_nan() || df <= 0.0 {
        return None;
    }
    let dist = StudentsT::new(0.0, 1.0, df).ok()?;
    Some((2.0 * dist.sf(t.abs())).min(1.0))
}

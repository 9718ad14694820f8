//! Mergeable sufficient statistics for KPIs (proportions, means, NPS) and the estimators built on
//! them: confidence intervals, treatment-over-control uplift and sample ratio mismatch checks.

mod distribution;
mod error;
mod interval;
mod level;
mod mean;
mod nps;
mod proportion;
mod srm;
mod uplift;

#[cfg(test)]
mod tests;

pub use error::StatsError;
pub use interval::Interval;
pub use level::{DEFAULT_LEVEL, check_level, level_or_default};
pub use mean::Mean;
pub use nps::Nps;
pub use proportion::Proportion;
pub use srm::{SRM_ALPHA, Srm, sample_ratio_mismatch};
pub use uplift::{
    METHOD_NEWCOMBE, METHOD_NPS_DELTA, METHOD_WELCH_T, Uplift, mean_uplift, nps_uplift,
    proportion_uplift,
};

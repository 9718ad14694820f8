//! Errors of the statistics core: inputs that no estimator can use, named with the bad value so
//! the service can pass the message on to its caller.

use thiserror::Error;

/// An input the statistics core rejects.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum StatsError {
    /// A confidence level outside the open interval (0, 1) (NaN included).
    #[error("confidence level must lie strictly between 0 and 1, got {level}")]
    InvalidLevel {
        /// The level as given.
        level: f64,
    },
    /// A Net Promoter Score answer outside 0..=10.
    #[error("NPS score must lie in 0..=10, got {score}")]
    InvalidScore {
        /// The score as given.
        score: u32,
    },
}

//! Confidence levels: the default a caller gets when it leaves the level unset, and the check
//! that a level lies in (0, 1).

use super::StatsError;

/// The confidence level used when a caller leaves it unset (0).
pub const DEFAULT_LEVEL: f64 = 0.95;

/// Maps the "unset" level 0 to [`DEFAULT_LEVEL`] and returns any other level unchanged; it does
/// not validate (see [`check_level`]).
pub fn level_or_default(level: f64) -> f64 {
    if level == 0.0 { DEFAULT_LEVEL } else { level }
}

/// Returns the level if it lies strictly between 0 and 1, else [`StatsError::InvalidLevel`].
///
/// The estimators return `None` for such levels; callers that want to tell their users why call
/// this first, typically as `check_level(level_or_default(level))?`.
pub fn check_level(level: f64) -> Result<f64, StatsError> {
    if is_valid(level) {
        Ok(level)
    } else {
        Err(StatsError::InvalidLevel { level })
    }
}

/// Whether the level lies strictly between 0 and 1 (false for NaN).
pub(crate) fn is_valid(level: f64) -> bool {
    level > 0.0 && level < 1.0
}

//! A two-sided confidence interval with the level it was computed at.

/// A two-sided confidence interval `[lower, upper]` at confidence `level`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// The lower bound.
    pub lower: f64,
    /// The upper bound.
    pub upper: f64,
    /// The confidence level, in (0, 1).
    pub level: f64,
}

impl Interval {
    /// Whether `value` lies within the bounds (inclusive).
    pub fn contains(&self, value: f64) -> bool {
        self.lower <= value && value <= self.upper
    }

    /// The distance between the bounds.
    pub fn width(&self) -> f64 {
        self.upper - self.lower
    }

    /// The symmetric interval `center ± half_width`.
    pub(crate) fn around(center: f64, half_width: f64, level: f64) -> Self {
        Self {
            lower: center - half_width,
            upper: center + half_width,
            level,
        }
    }

    /// The same interval with both bounds clamped to `[min, max]`.
    pub(crate) fn clamped(self, min: f64, max: f64) -> Self {
        Self {
            lower: self.lower.clamp(min, max),
            upper: self.upper.clamp(min, max),
            level: self.level,
        }
    }
}

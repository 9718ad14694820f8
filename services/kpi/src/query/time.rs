//! Conversions between the API's timestamps and durations and the Unix seconds that key the
//! store's buckets, with the rounding a query applies to the ends of its range.

use std::time::SystemTime;

use iee_api::kpi::KpiError;
use prost_types::{Duration, Timestamp};

/// 0001-01-01T00:00:00Z, the earliest timestamp protobuf allows.
const MIN_SECONDS: i64 = -62_135_596_800;
/// 9999-12-31T23:59:59Z, the latest.
const MAX_SECONDS: i64 = 253_402_300_799;
/// Nanoseconds per second.
const NANOS: i32 = 1_000_000_000;

/// A validated instant: Unix seconds and the nanoseconds within the second. Ordered by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Instant {
    seconds: i64,
    nanos: i32,
}

impl Instant {
    /// The instant of the request field `field`, refused when out of protobuf's range.
    pub(super) fn from_timestamp(field: &str, timestamp: &Timestamp) -> Result<Self, KpiError> {
        if !(0..NANOS).contains(&timestamp.nanos) {
            return Err(KpiError::invalid(
                field,
                format!("nanos must lie in 0..1e9, got {}", timestamp.nanos),
            ));
        }
        if !(MIN_SECONDS..=MAX_SECONDS).contains(&timestamp.seconds) {
            return Err(KpiError::invalid(
                field,
                format!(
                    "must lie between 0001-01-01 and 9999-12-31, got {} s since the Unix epoch",
                    timestamp.seconds
                ),
            ));
        }
        Ok(Self {
            seconds: timestamp.seconds,
            nanos: timestamp.nanos,
        })
    }

    /// The current time, clamped into protobuf's range.
    pub(super) fn from_system(now: SystemTime) -> Self {
        let timestamp = Timestamp::from(now);
        Self {
            seconds: timestamp.seconds.clamp(MIN_SECONDS, MAX_SECONDS),
            nanos: timestamp.nanos.clamp(0, NANOS - 1),
        }
    }

    /// The instant of a bookkeeping mark in Unix milliseconds; `None` for a value out of range.
    pub(super) fn from_millis(ms: f64) -> Option<Self> {
        if !ms.is_finite() {
            return None;
        }
        let seconds = (ms / 1000.0).floor();
        if !(MIN_SECONDS as f64..=MAX_SECONDS as f64).contains(&seconds) {
            return None;
        }
        let nanos = ((ms - seconds * 1000.0) * 1e6)
            .round()
            .clamp(0.0, f64::from(NANOS - 1));
        Some(Self {
            seconds: seconds as i64,
            nanos: nanos as i32,
        })
    }

    /// The start of the `width`-second bucket (aligned to the epoch) that holds this instant.
    pub(super) fn floor(self, width: i64) -> i64 {
        self.seconds.div_euclid(width) * width
    }

    /// The first multiple of `width` seconds at or after this instant.
    pub(super) fn ceil(self, width: i64) -> i64 {
        let floor = self.floor(width);
        if floor == self.seconds && self.nanos == 0 {
            floor
        } else {
            floor + width
        }
    }

    /// As a protobuf timestamp.
    pub(super) fn timestamp(self) -> Timestamp {
        Timestamp {
            seconds: self.seconds,
            nanos: self.nanos,
        }
    }
}

/// The timestamp of a bucket start in Unix seconds.
pub(super) fn timestamp(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

/// The duration of the request field `field` in seconds when it is a positive whole number of
/// minutes, `None` when it is zero (unset), and an error otherwise.
pub(super) fn whole_minutes(field: &str, duration: &Duration) -> Result<Option<i64>, KpiError> {
    if duration.seconds == 0 && duration.nanos == 0 {
        return Ok(None);
    }
    if duration.seconds < 0 || duration.nanos < 0 {
        return Err(KpiError::invalid(
            field,
            format!("must be positive, got {}", describe(duration)),
        ));
    }
    if duration.nanos != 0 || duration.seconds % 60 != 0 {
        return Err(KpiError::invalid(
            field,
            format!(
                "must be a whole number of minutes, got {}",
                describe(duration)
            ),
        ));
    }
    Ok(Some(duration.seconds))
}

/// A duration for messages, e.g. `90s` or `60s 500ns`.
fn describe(duration: &Duration) -> String {
    if duration.nanos == 0 {
        format!("{}s", duration.seconds)
    } else {
        format!("{}s {}ns", duration.seconds, duration.nanos)
    }
}

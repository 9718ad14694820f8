//! Time helpers: protobuf timestamps, `SystemTime` and milliseconds since the epoch, the unit
//! every fold rule compares in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost_types::Timestamp;

/// Milliseconds per second, minute, hour and day.
pub(crate) const SECOND_MS: i64 = 1_000;
pub(crate) const MINUTE_MS: i64 = 60 * SECOND_MS;
pub(crate) const DAY_MS: i64 = 24 * 60 * MINUTE_MS;

/// Milliseconds since the epoch of a timestamp (sub-millisecond precision is dropped; negative
/// nanos, which validation rejects, are treated as zero).
pub(crate) fn ts_ms(ts: &Timestamp) -> i64 {
    let nanos = i64::from(ts.nanos.max(0));
    ts.seconds
        .saturating_mul(SECOND_MS)
        .saturating_add(nanos / 1_000_000)
}

/// Milliseconds of an optional timestamp.
pub(crate) fn opt_ms(ts: Option<&Timestamp>) -> Option<i64> {
    ts.map(ts_ms)
}

/// The timestamp of a millisecond instant.
pub(crate) fn ms_ts(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(SECOND_MS),
        // In 0..1e9 by construction.
        nanos: i32::try_from(ms.rem_euclid(SECOND_MS) * 1_000_000).unwrap_or(0),
    }
}

/// Milliseconds since the epoch of a `SystemTime` (before the epoch counts as 0).
pub(crate) fn system_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A protobuf duration of `ms` milliseconds (negative spans are clamped to zero).
pub(crate) fn ms_duration(ms: i64) -> prost_types::Duration {
    let ms = ms.max(0);
    prost_types::Duration {
        seconds: ms / SECOND_MS,
        nanos: i32::try_from((ms % SECOND_MS) * 1_000_000).unwrap_or(0),
    }
}

/// Milliseconds of a protobuf duration, `None` when negative or malformed.
pub(crate) fn duration_ms(d: &prost_types::Duration) -> Option<i64> {
    if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 {
        return None;
    }
    Some(
        d.seconds
            .saturating_mul(SECOND_MS)
            .saturating_add(i64::from(d.nanos) / 1_000_000),
    )
}

/// Seconds (fractional) between two millisecond instants, `b - a`.
pub(crate) fn secs_between(a: i64, b: i64) -> f64 {
    // Precision loss only past 2^53 ms (~285,000 years).
    #[allow(clippy::cast_precision_loss)]
    let d = (b - a) as f64;
    d / 1_000.0
}

/// `Duration` of whole seconds from a config value, saturating.
pub(crate) fn secs_ms(secs: u64) -> i64 {
    i64::try_from(Duration::from_secs(secs).as_millis()).unwrap_or(i64::MAX)
}

/// Keeps the later of an optional stored timestamp and `ms`.
pub(crate) fn max_ts(stored: &mut Option<Timestamp>, ms: i64) {
    if stored.as_ref().is_none_or(|t| ts_ms(t) < ms) {
        *stored = Some(ms_ts(ms));
    }
}

/// Keeps the earlier of an optional stored timestamp and `ms`.
pub(crate) fn min_ts(stored: &mut Option<Timestamp>, ms: i64) {
    if stored.as_ref().is_none_or(|t| ts_ms(t) > ms) {
        *stored = Some(ms_ts(ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millisecond_round_trip_keeps_negative_instants_ordered() {
        for ms in [-1_500, -1, 0, 1, 999, 1_000, 1_700_000_000_123] {
            assert_eq!(ts_ms(&ms_ts(ms)), ms);
        }
        assert!(ms_ts(-1).nanos >= 0);
    }

    #[test]
    fn later_and_earlier_are_kept() {
        let mut t = None;
        max_ts(&mut t, 10);
        max_ts(&mut t, 5);
        assert_eq!(opt_ms(t.as_ref()), Some(10));
        min_ts(&mut t, 7);
        min_ts(&mut t, 9);
        assert_eq!(opt_ms(t.as_ref()), Some(7));
    }

    #[test]
    fn durations_reject_negative() {
        assert_eq!(duration_ms(&ms_duration(61_500)), Some(61_500));
        let neg = prost_types::Duration {
            seconds: -1,
            nanos: 0,
        };
        assert_eq!(duration_ms(&neg), None);
    }
}
